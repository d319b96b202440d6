# Writes OUTPUT, a C++ header holding the dashboard's files in UI_DIR, each
# as `inline constexpr char kName[]`, a raw string literal. Run by the build
# (service/CMakeLists.txt) whenever one of them changes.
set(INPUTS kDashboardHtml=${UI_DIR}/index.html kDashboardJs=${UI_DIR}/dashboard.js
           kDashboardCss=${UI_DIR}/dashboard.css)
set(delimiter "rfui")
set(text "// Generated from service/ui/ by service/ui/embed.cmake: do not edit.\n#pragma once\n\nnamespace ringfence::internal {\n")
foreach(pair IN LISTS INPUTS)
  string(REPLACE "=" ";" parts "${pair}")
  list(GET parts 0 name)
  list(GET parts 1 path)
  file(READ "${path}" content)
  string(FIND "${content}" ")${delimiter}\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${path} contains )${delimiter}\", which would end the raw string")
  endif()
  string(APPEND text "\ninline constexpr char ${name}[] = R\"${delimiter}(${content})${delimiter}\";\n")
endforeach()
string(APPEND text "\n}  // namespace ringfence::internal\n")
file(WRITE "${OUTPUT}.tmp" "${text}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
