# Builds the Rust crate valkey-iocore and defines the imported target
# valkey_iocore, which stands in for io_threads.c and queues.c.
#
# Installed as cmake/Modules/IOCore.cmake by valkey-patch/apply.sh and included
# by src/CMakeLists.txt once CMAKE_C_FLAGS holds the server's flags. The same
# settings as src/iocore.mk, as cache variables; unset ones default to
# src/.iocore-settings:
#
#   IOCORE_DIR    the crate's checkout (where its Cargo.toml is)
#   IOCORE_MODE   full | queues (queues keeps Valkey's own io_threads.c)
#   IOCORE_LINK   static | shared
#   IOCORE_RINGS  stock | tiny (every ring of 4 slots; full mode only)
#   IOCORE_SANITIZER  none only: an instrumented crate is a make-build feature
#
# The crate's build script gets VALKEY_SRC_DIR, VALKEY_CFLAGS and VALKEY_CC,
# as from src/iocore.mk. CMake has no single FINAL_CFLAGS, so VALKEY_CFLAGS is
# assembled from what valkey-server compiles with: the C flags of the build
# type, the C standard, and the target's definitions and include directories
# (all absolute here).

set(_iocore_settings "${CMAKE_SOURCE_DIR}/src/.iocore-settings")
if (EXISTS "${_iocore_settings}")
    file(STRINGS "${_iocore_settings}" _iocore_lines REGEX "^IOCORE_[A-Z]+ *[:?]?= *")
    foreach (_line IN LISTS _iocore_lines)
        string(REGEX REPLACE "^(IOCORE_[A-Z]+) *[:?]?= *(.*)$" "\\1" _name "${_line}")
        string(REGEX REPLACE "^(IOCORE_[A-Z]+) *[:?]?= *(.*)$" "\\2" _value "${_line}")
        if (NOT DEFINED ${_name})
            set(${_name} "${_value}")
        endif ()
    endforeach ()
endif ()
if (NOT DEFINED IOCORE_MODE)
    set(IOCORE_MODE "full")
endif ()
if (NOT DEFINED IOCORE_LINK)
    set(IOCORE_LINK "static")
endif ()
if (NOT DEFINED IOCORE_RINGS)
    set(IOCORE_RINGS "stock")
endif ()
if (DEFINED IOCORE_SANITIZER AND NOT IOCORE_SANITIZER STREQUAL "none")
    message(FATAL_ERROR "IOCORE_SANITIZER=${IOCORE_SANITIZER}: the CMake build cannot instrument the "
                        "crate; build the tree with make (scripts/build-valkey.sh --sanitizer)")
endif ()
if (NOT EXISTS "${IOCORE_DIR}/Cargo.toml")
    message(FATAL_ERROR "IOCORE_DIR='${IOCORE_DIR}' has no Cargo.toml: apply the patch with "
                        "valkey-patch/apply.sh, or pass -DIOCORE_DIR=/path/to/valkey-iocore")
endif ()

if (IOCORE_MODE STREQUAL "full")
    set(_iocore_features "valkey")
elseif (IOCORE_MODE STREQUAL "queues")
    set(_iocore_features "c-library")
    list(APPEND VALKEY_SERVER_SRCS ${CMAKE_SOURCE_DIR}/src/io_threads.c)
else ()
    message(FATAL_ERROR "IOCORE_MODE must be full or queues, not '${IOCORE_MODE}'")
endif ()

if (IOCORE_RINGS STREQUAL "tiny")
    if (NOT IOCORE_MODE STREQUAL "full")
        message(FATAL_ERROR "IOCORE_RINGS=tiny needs IOCORE_MODE=full: in ${IOCORE_MODE} mode "
                            "the I/O threads are Valkey's")
    endif ()
    string(APPEND _iocore_features ",tiny-rings")
elseif (NOT IOCORE_RINGS STREQUAL "stock")
    message(FATAL_ERROR "IOCORE_RINGS must be stock or tiny, not '${IOCORE_RINGS}'")
endif ()

find_program(IOCORE_CARGO cargo)
if (NOT IOCORE_CARGO)
    message(FATAL_ERROR "cargo not found: valkey-iocore is built with it")
endif ()
set(_iocore_target_dir "${CMAKE_BINARY_DIR}/.iocore-target")
set(_iocore_out "${_iocore_target_dir}/release")
if (IOCORE_LINK STREQUAL "static")
    set(_iocore_lib "${_iocore_out}/libvalkey_iocore.a")
    add_library(valkey_iocore STATIC IMPORTED GLOBAL)
elseif (IOCORE_LINK STREQUAL "shared")
    set(_iocore_lib "${_iocore_out}/libvalkey_iocore.so")
    add_library(valkey_iocore SHARED IMPORTED GLOBAL)
    # No SONAME: the executable names the library and finds it by its RUNPATH.
    set_target_properties(valkey_iocore PROPERTIES IMPORTED_NO_SONAME TRUE)
else ()
    message(FATAL_ERROR "IOCORE_LINK must be static or shared, not '${IOCORE_LINK}'")
endif ()

string(TOUPPER "${CMAKE_BUILD_TYPE}" _iocore_build_type)
set(_iocore_defs "$<TARGET_PROPERTY:valkey-server,COMPILE_DEFINITIONS>")
set(_iocore_incs "$<TARGET_PROPERTY:valkey-server,INCLUDE_DIRECTORIES>")
set(_iocore_cflags "${CMAKE_C_FLAGS} ${CMAKE_C_FLAGS_${_iocore_build_type}} -std=gnu11")
set(_iocore_cflags "${_iocore_cflags}$<$<BOOL:${_iocore_defs}>: -D$<JOIN:${_iocore_defs}, -D>>")
set(_iocore_cflags "${_iocore_cflags}$<$<BOOL:${_iocore_incs}>: -I$<JOIN:${_iocore_incs}, -I>>")

# Cargo knows best what is stale, so it is asked on every build.
add_custom_target(
    valkey_iocore_cargo
    COMMAND
        ${CMAKE_COMMAND} -E env "VALKEY_SRC_DIR=${CMAKE_SOURCE_DIR}/src" "VALKEY_CFLAGS=${_iocore_cflags}"
        "VALKEY_CC=${CMAKE_C_COMPILER}" ${IOCORE_CARGO} build --release --locked --features ${_iocore_features}
        --manifest-path ${IOCORE_DIR}/Cargo.toml --target-dir ${_iocore_target_dir}
    BYPRODUCTS "${_iocore_lib}"
    COMMENT "Building valkey-iocore (${IOCORE_MODE}, ${IOCORE_LINK}, ${IOCORE_RINGS} rings)"
    VERBATIM)
set_target_properties(valkey_iocore PROPERTIES IMPORTED_LOCATION "${_iocore_lib}" INTERFACE_LINK_LIBRARIES
                                                                                 "pthread;dl;m")
add_dependencies(valkey_iocore valkey_iocore_cargo)
