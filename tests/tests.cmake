# Unit and integration tests: one executable per tests/test_<module>.c,
# each case registered with CTest by name so a single case can be rerun:
#   ctest -R hnsw.recall      or     build/tests/test_hnsw recall
set(RV_DATA_DIR "${CMAKE_SOURCE_DIR}/data" CACHE PATH "Real data sets (scripts/data.sh)")
file(GLOB RV_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${RV_TEST_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^test_" "" mod ${name})
  add_executable(${name} ${src} ${CMAKE_SOURCE_DIR}/tests/harness.c)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE
    RV_DATA_DIR="${RV_DATA_DIR}" RV_BIN_DIR="${CMAKE_BINARY_DIR}"
    RV_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  target_link_libraries(${name} PRIVATE rv_cli_support ruvector_static)
  # Ask the binary for its case names so each is its own CTest test.
  file(READ ${src} body)
  string(REGEX MATCHALL "TEST\\(([A-Za-z0-9_]+)\\)" cases "${body}")
  foreach(c ${cases})
    string(REGEX REPLACE "TEST\\(([A-Za-z0-9_]+)\\)" "\\1" cname "${c}")
    add_test(NAME ${mod}.${cname} COMMAND ${name} ${cname}
             WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    if(cname MATCHES "^slow_")
      set_tests_properties(${mod}.${cname} PROPERTIES LABELS slow TIMEOUT 1200)
    else()
      set_tests_properties(${mod}.${cname} PROPERTIES TIMEOUT 600)
    endif()
  endforeach()
endforeach()

# The public header compiles alone, strictly, as C11 and as C++.
add_library(rv_headertest_c OBJECT ${CMAKE_SOURCE_DIR}/tests/headertest.c)
target_include_directories(rv_headertest_c PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_compile_options(rv_headertest_c PRIVATE -std=c11 -Wall -Wextra -pedantic -Werror)
add_library(rv_headertest_cxx OBJECT ${CMAKE_SOURCE_DIR}/tests/headertest.cpp)
target_include_directories(rv_headertest_cxx PRIVATE ${CMAKE_SOURCE_DIR}/include)
target_compile_options(rv_headertest_cxx PRIVATE -Wall -Wextra -pedantic -Werror)

# The environment variable forces a kernel set.
if(TARGET test_simd)
  foreach(isa scalar avx2)
    add_test(NAME simd.forced_${isa} COMMAND test_simd dispatch_picks_best_and_names_it)
    set_tests_properties(simd.forced_${isa} PROPERTIES ENVIRONMENT RUVECTOR_SIMD=${isa})
  endforeach()
endif()
