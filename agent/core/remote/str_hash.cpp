#include "remote/str_hash.h"

#include <cstring>

namespace aioscope {

namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct State {
    std::uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
};

std::uint64_t le64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

}  // namespace

std::uint64_t sipHash(StrHashModel model, const HashSecret& key, std::string_view bytes) {
    int c = model == StrHashModel::siphash24 ? 2 : 1;
    int d = model == StrHashModel::siphash24 ? 4 : 3;
    State s{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL, key.k0 ^ 0x6c7967656e657261ULL,
            key.k1 ^ 0x7465646279746573ULL};
    const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t n = bytes.size();
    std::uint64_t b = static_cast<std::uint64_t>(n) << 56;
    for (; n >= 8; n -= 8, in += 8) {
        std::uint64_t m = le64(in);
        s.v3 ^= m;
        for (int i = 0; i < c; ++i) s.round();
        s.v0 ^= m;
    }
    std::uint64_t t = 0;
    for (std::size_t i = n; i-- > 0;) t = (t << 8) | in[i];
    b |= t;
    s.v3 ^= b;
    for (int i = 0; i < c; ++i) s.round();
    s.v0 ^= b;
    s.v2 ^= 0xff;
    for (int i = 0; i < d; ++i) s.round();
    return (s.v0 ^ s.v1) ^ (s.v2 ^ s.v3);
}

std::int64_t strHash(StrHashModel model, const HashSecret& key, std::string_view ascii) {
    if (ascii.empty()) return 0;
    auto h = static_cast<std::int64_t>(sipHash(model, key, ascii));
    return h == -1 ? -2 : h;
}

}  // namespace aioscope
