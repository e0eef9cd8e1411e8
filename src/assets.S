/*
 * assets.S - files of src/ that the binary serves, embedded at build time
 * by the assembler (.incbin), each followed by a NUL so that C can read it
 * as a string: the dashboard page (src/dashboard.html, served at /) and
 * the OpenAPI document (src/openapi.json, at /openapi.json). Edit those
 * files; the Makefile rebuilds this object when they change. Paths are
 * relative to the repository root, where make runs.
 */
#define ASSET(symbol, file)          \
    .globl symbol;                   \
    .type symbol, @object;           \
    .balign 16;                      \
symbol:                              \
    .incbin file;                    \
    .byte 0;                         \
    .size symbol, . - symbol

    .section .rodata
ASSET(ws_dashboard_html, "src/dashboard.html")
ASSET(ws_openapi_json, "src/openapi.json")

    .section .note.GNU-stack, "", @progbits
