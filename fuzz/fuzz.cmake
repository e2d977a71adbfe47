# Fuzz targets: fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput.
# Normal builds link each with fuzz/standalone.c, a driver that replays the
# corpus in fuzz/corpus/<name>/ and is run by CTest (fuzz.<name>).
# With -DRV_FUZZ=ON and clang, each also builds as a libFuzzer binary:
#   build-fuzz/fuzz/fuzz_<name>_lf fuzz/corpus/<name>
file(GLOB RV_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
foreach(src ${RV_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  add_executable(${name} ${src} ${CMAKE_SOURCE_DIR}/fuzz/standalone.c)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/cli ${CMAKE_SOURCE_DIR}/server)
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_link_libraries(${name} PRIVATE rv_cli_support ruvector_static)
  add_test(NAME fuzz.${short} COMMAND ${name} ${CMAKE_SOURCE_DIR}/fuzz/corpus/${short})
  if(RV_FUZZ)
    add_executable(${name}_lf ${src})
    set_target_properties(${name}_lf PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
    target_include_directories(${name}_lf PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/cli ${CMAKE_SOURCE_DIR}/server)
    target_compile_definitions(${name}_lf PRIVATE _GNU_SOURCE)
    target_compile_options(${name}_lf PRIVATE -fsanitize=fuzzer)
    target_link_options(${name}_lf PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name}_lf PRIVATE rv_cli_support ruvector_static)
  endif()
endforeach()
