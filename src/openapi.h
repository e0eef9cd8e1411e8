/*
 * openapi.h - documents the binary serves, embedded at build time from
 * src/ by src/assets.S: the OpenAPI 3 document of the HTTP API (SPEC §5)
 * and the dashboard page. Edit src/openapi.json together with the routes
 * of api.c: the end-to-end tests check that every route answered is
 * described there, and validate the document.
 */
#ifndef WS_OPENAPI_H
#define WS_OPENAPI_H

/* src/openapi.json, NUL-terminated; static storage. */
extern const char ws_openapi_json[];

/* src/dashboard.html, NUL-terminated; static storage. */
extern const char ws_dashboard_html[];

#endif
