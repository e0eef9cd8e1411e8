/*
 * openapi.h - the OpenAPI 3 document of the HTTP API (SPEC §5).
 */
#ifndef WS_OPENAPI_H
#define WS_OPENAPI_H

/* A NUL-terminated JSON text. */
extern const char ws_openapi_json[];

#endif
