// `hash`: SHA-256 of a string or of a file, a FemtoClaw capability in C.
//
// Files are opened with plain stdio: every path resolves against the
// directories the policy mounted for this component, so the sandbox, not
// this code, decides what is reachable. The runtime has already validated
// the arguments against the input schemas below before `invoke` runs.

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"
#include "sha256.h"

#define HASH_OUTPUT_SCHEMA                                                    \
  "{\"type\":\"object\",\"properties\":{"                                     \
  "\"sha256\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{64}$\"},"          \
  "\"bytes\":{\"type\":\"integer\",\"minimum\":0}},"                          \
  "\"required\":[\"sha256\",\"bytes\"],\"additionalProperties\":false}"

typedef exports_femtoclaw_runtime_tool_provider_tool_spec_t tool_spec_t;
typedef exports_femtoclaw_runtime_tool_provider_tool_error_t tool_error_t;
typedef exports_femtoclaw_runtime_tool_provider_invocation_t invocation_t;

static void log_line(femtoclaw_runtime_log_level_t level, const char *text) {
  capability_string_t message;
  capability_string_set(&message, text);
  femtoclaw_runtime_log_log(level, &message);
}

static void spec(tool_spec_t *spec, const char *name, const char *description,
                 const char *input_schema,
                 femtoclaw_runtime_types_effect_class_t effect) {
  capability_string_dup(&spec->name, name);
  capability_string_dup(&spec->description, description);
  capability_string_dup(&spec->input_schema, input_schema);
  spec->output_schema.is_some = true;
  capability_string_dup(&spec->output_schema.val, HASH_OUTPUT_SCHEMA);
  spec->effect = effect;
}

void exports_femtoclaw_runtime_tool_provider_describe(
    exports_femtoclaw_runtime_tool_provider_list_tool_spec_t *ret) {
  ret->len = 2;
  ret->ptr = calloc(ret->len, sizeof(tool_spec_t));
  if (ret->ptr == NULL) abort();
  spec(&ret->ptr[0], "sha256_text", "SHA-256 of a UTF-8 string.",
       "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
       "\"required\":[\"text\"],\"additionalProperties\":false}",
       FEMTOCLAW_RUNTIME_TYPES_EFFECT_CLASS_PURE);
  spec(&ret->ptr[1], "sha256_file",
       "SHA-256 of a file at an absolute guest path.",
       "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\","
       "\"minLength\":1,\"maxLength\":4096}},\"required\":[\"path\"],"
       "\"additionalProperties\":false}",
       FEMTOCLAW_RUNTIME_TYPES_EFFECT_CLASS_READ);
}

// Appends the UTF-8 encoding of `cp` to `out`.
static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static int hex4(const char *s, unsigned long *out) {
  *out = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (v < 0) return 0;
    *out = (*out << 4) | (unsigned long)v;
  }
  return 1;
}

// Decodes the JSON string starting at the quote `*pos` points to into a new
// buffer (NUL-terminated, length in `*len`); advances `*pos` past it.
// Returns NULL on malformed input.
static char *json_string(const char **pos, const char *end, size_t *len) {
  const char *p = *pos;
  if (p >= end || *p != '"') return NULL;
  p++;
  // Decoding never makes a string longer than its escaped form.
  char *out = malloc((size_t)(end - p) + 1);
  if (out == NULL) abort();
  size_t n = 0;
  while (p < end && *p != '"') {
    if (*p != '\\') {
      out[n++] = *p++;
      continue;
    }
    if (++p >= end) break;
    char c = *p++;
    switch (c) {
      case '"': case '\\': case '/': out[n++] = c; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        unsigned long cp, low;
        if (end - p < 4 || !hex4(p, &cp)) goto bad;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' &&
            p[1] == 'u' && hex4(p + 2, &low) && low >= 0xDC00 &&
            low <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          p += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
          cp = 0xFFFD;  // a lone surrogate has no UTF-8 form
        }
        n += put_utf8(out + n, cp);
        break;
      }
      default: goto bad;
    }
  }
  if (p >= end) goto bad;
  *pos = p + 1;
  out[n] = '\0';
  *len = n;
  return out;
bad:
  free(out);
  return NULL;
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

// The value of the only member of a one-member JSON object `{"KEY": "..."}`
// (the input schemas allow nothing else).
static char *only_string_member(const capability_string_t *json,
                                const char *key, size_t *len) {
  const char *p = (const char *)json->ptr, *end = p + json->len;
  size_t key_len;
  p = skip_ws(p, end);
  if (p >= end || *p++ != '{') return NULL;
  p = skip_ws(p, end);
  char *name = json_string(&p, end, &key_len);
  if (name == NULL) return NULL;
  int matches = strcmp(name, key) == 0;
  free(name);
  p = skip_ws(p, end);
  if (!matches || p >= end || *p++ != ':') return NULL;
  p = skip_ws(p, end);
  return json_string(&p, end, len);
}

static void fail(tool_error_t *err, uint8_t tag, const char *what,
                 const char *detail) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", what, detail);
  err->tag = tag;
  // Every case of `tool-error` carries one string, at the same place.
  capability_string_dup(&err->val.failed, message);
}

static void answer(capability_string_t *ret, sha256_ctx *ctx,
                   unsigned long long bytes) {
  uint8_t digest[32];
  sha256_final(ctx, digest);
  char out[128];
  int n = snprintf(out, sizeof out, "{\"sha256\":\"");
  for (int i = 0; i < 32; i++) n += snprintf(out + n, 3, "%02x", digest[i]);
  snprintf(out + n, sizeof out - (size_t)n, "\",\"bytes\":%llu}", bytes);
  capability_string_dup(ret, out);
}

static bool hash_file(const char *path, capability_string_t *ret,
                      tool_error_t *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    // Outside every mount the sandbox answers "not permitted" (or, for a
    // path under no mount at all, "not found"): both are the grant at work.
    int denied = errno == EACCES || errno == EPERM || errno == ENOTCAPABLE;
    fail(err,
         denied ? FEMTOCLAW_RUNTIME_TYPES_TOOL_ERROR_DENIED
                : FEMTOCLAW_RUNTIME_TYPES_TOOL_ERROR_FAILED,
         path, strerror(errno));
    return false;
  }
  sha256_ctx ctx;
  sha256_init(&ctx);
  unsigned long long total = 0;
  uint8_t buf[16384];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    sha256_update(&ctx, buf, n);
    total += n;
  }
  int failed = ferror(f);
  int read_errno = errno;
  fclose(f);
  if (failed) {
    fail(err, FEMTOCLAW_RUNTIME_TYPES_TOOL_ERROR_FAILED, path,
         strerror(read_errno));
    return false;
  }
  answer(ret, &ctx, total);
  return true;
}

bool exports_femtoclaw_runtime_tool_provider_invoke(invocation_t *call,
                                                    capability_string_t *ret,
                                                    tool_error_t *err) {
  bool ok = false;
  size_t len = 0;
  char *value = NULL;
  char tool[64] = "";
  snprintf(tool, sizeof tool, "%.*s", (int)call->tool.len,
           (const char *)call->tool.ptr);
  char line[96];
  snprintf(line, sizeof line, "invoke %s", tool);
  log_line(FEMTOCLAW_RUNTIME_LOG_LEVEL_INFO, line);

  if (strcmp(tool, "sha256_text") == 0) {
    value = only_string_member(&call->arguments, "text", &len);
    if (value != NULL) {
      sha256_ctx ctx;
      sha256_init(&ctx);
      sha256_update(&ctx, (const uint8_t *)value, len);
      answer(ret, &ctx, len);
      ok = true;
    }
  } else if (strcmp(tool, "sha256_file") == 0) {
    value = only_string_member(&call->arguments, "path", &len);
    if (value != NULL) ok = hash_file(value, ret, err);
  } else {
    fail(err, FEMTOCLAW_RUNTIME_TYPES_TOOL_ERROR_UNKNOWN_TOOL, tool,
         "no such tool");
    goto done;
  }
  if (value == NULL)
    fail(err, FEMTOCLAW_RUNTIME_TYPES_TOOL_ERROR_INVALID_ARGUMENTS, tool,
         "arguments are not the one-member object the schema describes");
done:
  free(value);
  exports_femtoclaw_runtime_tool_provider_invocation_free(call);
  return ok;
}
