# Generates the C++ file that holds every file of viewer/ (HTML, CSS, JS) as a
# string, so that `aioscope report` needs nothing but its own binary. Run at
# build time: cmake -DVIEWER_DIR=<viewer/> -DOUTPUT=<file.cpp> -P embed_viewer.cmake
#
# The scripts and the style sheet are inlined into <script>/<style> elements
# of the report: a "</script" or "<!--" in them would end or confuse those
# elements, so they are refused here rather than discovered in a browser.
file(GLOB_RECURSE files RELATIVE "${VIEWER_DIR}" "${VIEWER_DIR}/*.html" "${VIEWER_DIR}/*.css" "${VIEWER_DIR}/*.js")
list(SORT files)
set(delim "aioscope_viewer")
set(out "// Generated from viewer/ by cli/report/embed_viewer.cmake: do not edit.\n")
string(APPEND out "#include \"report/assets.h\"\n\nnamespace aioscope::cli::report {\n\n")
string(APPEND out "const Asset kViewerAssets[] = {\n")
set(count 0)
foreach(f IN LISTS files)
  file(READ "${VIEWER_DIR}/${f}" content)
  string(FIND "${content}" ")${delim}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "viewer/${f} contains )${delim}\" and cannot be embedded")
  endif()
  if(f MATCHES "\\.(js|css)$")
    string(TOLOWER "${content}" lower)
    foreach(bad "</script" "<!--" "</style")
      string(FIND "${lower}" "${bad}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "viewer/${f} contains \"${bad}\": it would break the report it is inlined into (write \\x3c instead of <)")
      endif()
    endforeach()
  endif()
  string(APPEND out "    {\"${f}\", R\"${delim}(${content})${delim}\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
string(APPEND out "};\nconst std::size_t kViewerAssetCount = ${count};\n\n}  // namespace aioscope::cli::report\n")
# Only touch the output when it changed: no needless recompiles.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL out)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${out}")
