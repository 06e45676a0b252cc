#include "report/packed.h"

#include <map>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace aioscope::cli::report {

using nlohmann::json;

namespace {

constexpr const char* kFormat = "aioscope/packed/1";
// A reference costs about this many characters ([1,1234]): smaller values
// are always written out.
constexpr std::size_t kWorthSharing = 10;

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

std::uint64_t hashText(char kind, const std::string& s) {
    return mix(static_cast<std::uint64_t>(kind), std::hash<std::string>{}(s));
}

// Two passes over the document: the first counts how often each subtree
// occurs (by a structural hash), the second writes the packed form, putting
// every subtree that occurs twice or more, and is worth it, into the table.
// Equal hashes are confirmed with a deep comparison before sharing.
class Packer {
public:
    json run(const json& doc) {
        std::size_t size = 0;
        count(doc, size);
        std::uint64_t h = 0;
        json root = encode(doc, h, size);
        return json{{"packed", kFormat}, {"shapes", std::move(m_shapes)}, {"table", std::move(m_table)}, {"root", std::move(root)}};
    }

private:
    struct Seen {
        std::uint32_t count = 0;
        const json* first = nullptr;
        std::int64_t index = -1;
    };

    static std::uint64_t scalarHash(const json& v, std::size_t& size) {
        std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
        size = text.size();
        return hashText(v.is_string() ? 's' : 'n', text);
    }

    std::uint64_t count(const json& v, std::size_t& size) {
        std::uint64_t h;
        if (v.is_array()) {
            h = 0xa11a;
            size = 4;
            for (const auto& e : v) {
                std::size_t s = 0;
                h = mix(h, count(e, s));
                size += s + 1;
            }
        } else if (v.is_object()) {
            h = 0x0b1e;
            size = 4;
            for (auto it = v.begin(); it != v.end(); ++it) {
                std::size_t s = 0;
                h = mix(mix(h, hashText('k', it.key())), count(it.value(), s));
                size += s + 1;
            }
        } else {
            h = scalarHash(v, size);
        }
        if (size >= kWorthSharing) {
            Seen& s = m_seen[h];
            if (!s.first) s.first = &v;
            ++s.count;
        }
        return h;
    }

    json encode(const json& v, std::uint64_t& h, std::size_t& size) {
        json out;
        if (v.is_array()) {
            h = 0xa11a;
            size = 4;
            out = json::array({0});
            for (const auto& e : v) {
                std::uint64_t ch = 0;
                std::size_t s = 0;
                out.push_back(encode(e, ch, s));
                h = mix(h, ch);
                size += s + 1;
            }
        } else if (v.is_object()) {
            h = 0x0b1e;
            size = 4;
            std::vector<std::string> keys;
            out = json::array({0});
            for (auto it = v.begin(); it != v.end(); ++it) {
                std::uint64_t ch = 0;
                std::size_t s = 0;
                keys.push_back(it.key());
                out.push_back(encode(it.value(), ch, s));
                h = mix(mix(h, hashText('k', it.key())), ch);
                size += s + 1;
            }
            out[0] = 2 + shape(keys);
        } else {
            h = scalarHash(v, size);
            out = v;
        }
        if (size < kWorthSharing) return out;
        auto it = m_seen.find(h);
        if (it == m_seen.end() || it->second.count < 2) return out;
        Seen& s = it->second;
        if (s.first != &v && *s.first != v) return out;  // a hash collision: not the same value
        if (s.index < 0) {
            s.index = static_cast<std::int64_t>(m_table.size());
            m_table.push_back(std::move(out));
        }
        return json::array({1, s.index});
    }

    std::size_t shape(const std::vector<std::string>& keys) {
        auto [it, fresh] = m_shapeIndex.try_emplace(keys, m_shapes.size());
        if (fresh) m_shapes.push_back(keys);
        return it->second;
    }

    std::unordered_map<std::uint64_t, Seen> m_seen;
    std::map<std::vector<std::string>, std::size_t> m_shapeIndex;
    json m_shapes = json::array();
    json m_table = json::array();
};

json decode(const json& v, const json& shapes, const std::vector<json>& values, int depth) {
    if (!v.is_array()) return v;
    if (depth > 10000 || v.empty() || !v[0].is_number_integer() || v[0].get<std::int64_t>() < 0) throw std::runtime_error("bad packed value");
    std::size_t tag = v[0].get<std::size_t>();
    if (tag == 0) {
        json out = json::array();
        for (std::size_t i = 1; i < v.size(); ++i) out.push_back(decode(v[i], shapes, values, depth + 1));
        return out;
    }
    if (tag == 1) {
        if (v.size() != 2 || !v[1].is_number_integer() || v[1].get<std::int64_t>() < 0 ||
            v[1].get<std::size_t>() >= values.size()) {
            throw std::runtime_error("bad packed reference");
        }
        return values[v[1].get<std::size_t>()];
    }
    if (tag - 2 >= shapes.size() || shapes[tag - 2].size() != v.size() - 1) throw std::runtime_error("bad packed shape");
    json out = json::object();
    const json& keys = shapes[tag - 2];
    for (std::size_t i = 0; i < keys.size(); ++i) out[keys[i].get<std::string>()] = decode(v[i + 1], shapes, values, depth + 1);
    return out;
}

}  // namespace

json pack(const json& doc) { return Packer().run(doc); }

json unpack(const json& packed) {
    if (!packed.is_object() || packed.value("packed", std::string()) != kFormat) throw std::runtime_error("not packed");
    std::vector<json> values;
    for (const auto& e : packed.at("table")) values.push_back(decode(e, packed.at("shapes"), values, 0));
    return decode(packed.at("root"), packed.at("shapes"), values, 0);
}

}  // namespace aioscope::cli::report
