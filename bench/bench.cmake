# Benchmarks, data tools and the demo (included from the top CMakeLists.txt).
#   BUILD/examples/demo          the demo on the Fiori embeddings (scripts/demo.sh)
#   BUILD/bench/bench_search     recall / QPS / build time (scripts/bench.sh)
#   BUILD/bench/idx2fvecs        IDX images -> .fvecs        (scripts/data.sh)
#   BUILD/bench/groundtruth      exact k-NN ground truth      (scripts/data.sh, textdata.sh)
# The demo and the benchmark use only the public header and link the static
# library; the two data tools depend on nothing of ruvector.

# Real data sets (scripts/data.sh); tests/tests.cmake may have set the path.
if(RV_DATA_DIR)
  set(RV_BENCH_DATA_DIR "${RV_DATA_DIR}")
else()
  set(RV_BENCH_DATA_DIR "${CMAKE_SOURCE_DIR}/data")
endif()

add_executable(demo ${CMAKE_SOURCE_DIR}/examples/demo.c)
set_target_properties(demo PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/examples)
target_compile_options(demo PRIVATE ${RV_WARN})
target_compile_definitions(demo PRIVATE _GNU_SOURCE)
target_link_libraries(demo PRIVATE ruvector_static PkgConfig::CJSON m)

# Search latency while an upsert links (and instruction counts of the search
# path under callgrind): bench_concurrent latency|search ...
add_executable(bench_concurrent ${CMAKE_SOURCE_DIR}/bench/bench_concurrent.c)
set_target_properties(bench_concurrent PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
target_compile_options(bench_concurrent PRIVATE ${RV_WARN})
target_compile_definitions(bench_concurrent PRIVATE _GNU_SOURCE)
target_link_libraries(bench_concurrent PRIVATE ruvector_static m)

add_executable(bench_search ${CMAKE_SOURCE_DIR}/bench/bench_search.c)
set_target_properties(bench_search PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
target_compile_options(bench_search PRIVATE ${RV_WARN})
target_compile_definitions(bench_search PRIVATE _GNU_SOURCE
  RV_DATA_DIR="${RV_BENCH_DATA_DIR}" RV_BIN_DIR="${CMAKE_BINARY_DIR}")
target_link_libraries(bench_search PRIVATE ruvector_static m)

# Brute force over 60,000 x 10,000 vectors: worth the host's full vector
# width; the binary only ever runs where it was built.
add_executable(groundtruth ${CMAKE_SOURCE_DIR}/bench/groundtruth.c)
set_target_properties(groundtruth PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
target_compile_options(groundtruth PRIVATE ${RV_WARN} -O3 -march=native)
target_compile_definitions(groundtruth PRIVATE _GNU_SOURCE)
target_link_libraries(groundtruth PRIVATE Threads::Threads m)

find_package(ZLIB)
if(ZLIB_FOUND)
  add_executable(idx2fvecs ${CMAKE_SOURCE_DIR}/bench/idx2fvecs.c)
  set_target_properties(idx2fvecs PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_compile_options(idx2fvecs PRIVATE ${RV_WARN})
  target_compile_definitions(idx2fvecs PRIVATE _GNU_SOURCE)
  target_link_libraries(idx2fvecs PRIVATE ZLIB::ZLIB)
endif()

# HNSW traversal on SQ8 codes vs float32, on the index API directly.
add_executable(bench_hnsw_sq8 ${CMAKE_SOURCE_DIR}/bench/bench_hnsw_sq8.c)
set_target_properties(bench_hnsw_sq8 PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
target_compile_options(bench_hnsw_sq8 PRIVATE ${RV_WARN})
target_compile_definitions(bench_hnsw_sq8 PRIVATE _GNU_SOURCE)
target_include_directories(bench_hnsw_sq8 PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(bench_hnsw_sq8 PRIVATE ruvector_static m)
