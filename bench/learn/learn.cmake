# The learning benchmark (docs/LEARNING.md), included from the top
# CMakeLists.txt after bench/bench.cmake:
#   BUILD/bench/learn_bench   simulated users' feedback on real data; NDCG@10
#                             and recall@10 against a hidden truth, per learner
# It uses only the public headers and links the static library. `make
# bench-learn` runs scripts/learndata.sh, then the program, then
# bench/learn/plots.gp.

if(NOT DEFINED RV_BENCH_DATA_DIR)
  if(RV_DATA_DIR)
    set(RV_BENCH_DATA_DIR "${RV_DATA_DIR}")
  else()
    set(RV_BENCH_DATA_DIR "${CMAKE_SOURCE_DIR}/data")
  endif()
endif()

file(GLOB RV_LEARN_BENCH_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bench/learn/*.c)
add_executable(learn_bench ${RV_LEARN_BENCH_SOURCES})
set_target_properties(learn_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
target_compile_options(learn_bench PRIVATE ${RV_WARN})
target_compile_definitions(learn_bench PRIVATE _GNU_SOURCE RV_DATA_DIR="${RV_BENCH_DATA_DIR}")
target_link_libraries(learn_bench PRIVATE ruvector_static m)
