// N-API surface of the udp data path (plain node_api.h, no C++). Typed and documented for TypeScript in
// src/backend/udp/engine.ts, which is the only caller:
//   openTun(name, {persist, vnetHdr, netns?}) -> {fd, name}
//   createEngine({tunFd, vnetHdr, bindAddress, bindPort, ownSubnet, udpGso, udpGro, netns?}) -> handle
//   setPeers(handle, [{subnet: 'a.b.c.d/len', address: 'a.b.c.d', port}])
//   stats(handle) -> {counters..., drops: {...}, features: {...}}
//   stop(handle)
// and the rtnetlink writer, typed in src/kernel/rtnl/native.ts:
//   rtnlTransact(requests: Uint8Array, netns?) -> per request 0 or {errno, text, message}
//   rtnlIfindexes(names: string[], netns?) -> number[] (0 = no such device)
#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include "engine.h"
#include "rtnl.h"
#include "tun.h"

#define ERR_LEN 512

// Same order as enum drop_reason / enum engine_counter.
static const char *const drop_reason_names[DROP_REASON_COUNT] = {
    "malformed", "notIpv4",  "unknownPeer",         "spoofedSource", "wrongDestination",
    "noRoute",   "ttlExpired", "unsupportedOffload", "sendFailed",    "tunWriteFailed",
};
static const char *const counter_names[COUNTER_COUNT] = {
    "txPackets", "txBytes",  "rxPackets", "rxBytes",  "icmpSent",      "tunReads",
    "tunWrites", "udpSends", "udpRecvs",  "udpDatagramsReceived", "tunReadErrors", "gsoFallbacks",
};

struct engine_handle {
  struct engine *engine;
};

#define CHECK(env, call)                                        \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      throw_last_error(env);                                    \
      return NULL;                                              \
    }                                                           \
  } while (0)

static void throw_last_error(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, "ERR_WEFT_NAPI", info && info->error_message ? info->error_message : "N-API call failed");
}

static napi_value throw_type(napi_env env, const char *fmt, const char *what) {
  char message[ERR_LEN];
  snprintf(message, sizeof(message), fmt, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message);
  return NULL;
}

// Property readers: return 0 on success, 1 when absent (and not required), -1 with a pending exception.
static int get_property(napi_env env, napi_value obj, const char *key, napi_valuetype want, napi_value *out,
                        int required) {
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok) return -1;
  napi_value value;
  napi_valuetype type = napi_undefined;
  if (has) {
    if (napi_get_named_property(env, obj, key, &value) != napi_ok) return -1;
    napi_typeof(env, value, &type);
  }
  if (type == napi_undefined) {
    if (!required) return 1;
    throw_type(env, "option \"%s\" is required", key);
    return -1;
  }
  if (type != want) {
    const char *names[] = {"undefined", "null", "boolean", "number", "string", "symbol", "object", "function"};
    char message[ERR_LEN];
    snprintf(message, sizeof(message), "option \"%s\" must be a %s, got %s", key, names[want],
             type <= napi_function ? names[type] : "other");
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return -1;
  }
  *out = value;
  return 0;
}

static int get_string(napi_env env, napi_value obj, const char *key, char *buf, size_t len, int required) {
  napi_value value;
  int rc = get_property(env, obj, key, napi_string, &value, required);
  if (rc != 0) return rc;
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, value, buf, len, &copied) != napi_ok) return -1;
  if (copied >= len - 1) {
    throw_type(env, "option \"%s\" is too long", key);
    return -1;
  }
  return 0;
}

static int get_bool(napi_env env, napi_value obj, const char *key, int fallback, int *out) {
  napi_value value;
  int rc = get_property(env, obj, key, napi_boolean, &value, 0);
  if (rc < 0) return -1;
  if (rc == 1) {
    *out = fallback;
    return 0;
  }
  bool b = false;
  napi_get_value_bool(env, value, &b);
  *out = b ? 1 : 0;
  return 0;
}

static int get_int(napi_env env, napi_value obj, const char *key, int64_t min, int64_t max, int64_t *out) {
  napi_value value;
  int rc = get_property(env, obj, key, napi_number, &value, 1);
  if (rc != 0) return -1;
  double d = 0;
  napi_get_value_double(env, value, &d);
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    char message[ERR_LEN];
    snprintf(message, sizeof(message), "option \"%s\" must be an integer in %lld..%lld, got %g", key,
             (long long)min, (long long)max, d);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static int parse_address(const char *text, uint32_t *out) {
  struct in_addr addr;
  if (inet_pton(AF_INET, text, &addr) != 1) return -1;
  *out = ntohl(addr.s_addr);
  return 0;
}

// "a.b.c.d/len" with host bits zero.
static int parse_prefix(const char *text, uint32_t *network, uint8_t *len) {
  const char *slash = strchr(text, '/');
  if (!slash || slash - text >= INET_ADDRSTRLEN || slash[1] == 0) return -1;
  char address[INET_ADDRSTRLEN];
  memcpy(address, text, (size_t)(slash - text));
  address[slash - text] = 0;
  char *end = NULL;
  long l = strtol(slash + 1, &end, 10);
  if (*end != 0 || l < 0 || l > 32) return -1;
  uint32_t a;
  if (parse_address(address, &a) != 0) return -1;
  uint32_t mask = l == 0 ? 0 : 0xffffffffu << (32 - l);
  if ((a & mask) != a) return -1;
  *network = a;
  *len = (uint8_t)l;
  return 0;
}

static napi_value open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[64];
  size_t copied = 0;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_string) return throw_type(env, "%s", "openTun: name must be a string");
  CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &copied));
  struct tun_request req = {.name = name};
  char netns[PATH_MAX] = {0};
  if (argc >= 2) {
    napi_typeof(env, argv[1], &type);
    if (type != napi_object) return throw_type(env, "%s", "openTun: options must be an object");
    if (get_bool(env, argv[1], "persist", 1, &req.persist) < 0) return NULL;
    if (get_bool(env, argv[1], "vnetHdr", 0, &req.vnet_hdr) < 0) return NULL;
    int rc = get_string(env, argv[1], "netns", netns, sizeof(netns), 0);
    if (rc < 0) return NULL;
    if (rc == 0) req.netns_path = netns;
  } else {
    req.persist = 1;
  }
  char err[ERR_LEN];
  if (tun_open(&req, err, sizeof(err)) != 0) {
    napi_throw_error(env, "ERR_WEFT_TUN", err);
    return NULL;
  }
  napi_value result, fd, ifname;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, req.fd, &fd));
  CHECK(env, napi_create_string_utf8(env, req.ifname, NAPI_AUTO_LENGTH, &ifname));
  CHECK(env, napi_set_named_property(env, result, "fd", fd));
  CHECK(env, napi_set_named_property(env, result, "name", ifname));
  return result;
}

static void finalize_engine(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct engine_handle *handle = data;
  if (handle->engine) engine_free(handle->engine);
  free(handle);
}

static napi_value create_engine(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options;
  CHECK(env, napi_get_cb_info(env, info, &argc, &options, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, options, &type);
  if (type != napi_object) return throw_type(env, "%s", "createEngine: options must be an object");

  struct engine_config config = {0};
  int64_t tun_fd, port;
  char bind_address[64], own_subnet[64], netns[PATH_MAX];
  if (get_int(env, options, "tunFd", 0, INT32_MAX, &tun_fd) < 0) return NULL;
  if (get_int(env, options, "bindPort", 1, 65535, &port) < 0) return NULL;
  if (get_string(env, options, "bindAddress", bind_address, sizeof(bind_address), 1) < 0) return NULL;
  if (get_string(env, options, "ownSubnet", own_subnet, sizeof(own_subnet), 1) < 0) return NULL;
  if (get_bool(env, options, "vnetHdr", 0, &config.vnet_hdr) < 0) return NULL;
  if (get_bool(env, options, "udpGso", 1, &config.udp_gso) < 0) return NULL;
  if (get_bool(env, options, "udpGro", 1, &config.udp_gro) < 0) return NULL;
  int rc = get_string(env, options, "netns", netns, sizeof(netns), 0);
  if (rc < 0) return NULL;
  if (rc == 0) config.netns_path = netns;
  if (parse_address(bind_address, &config.bind_address) != 0) {
    return throw_type(env, "createEngine: bindAddress \"%s\" is not an IPv4 address", bind_address);
  }
  if (parse_prefix(own_subnet, &config.own_network, &config.own_prefix_len) != 0) {
    return throw_type(env, "createEngine: ownSubnet \"%s\" is not an IPv4 prefix a.b.c.d/len without host bits",
                      own_subnet);
  }
  config.tun_fd = (int)tun_fd;
  config.bind_port = (uint16_t)port;

  struct engine_handle *handle = calloc(1, sizeof(*handle));
  if (!handle) {
    napi_throw_error(env, "ERR_WEFT_ENGINE", "out of memory");
    return NULL;
  }
  char err[ERR_LEN];
  if (engine_create(&config, &handle->engine, err, sizeof(err)) != 0) {
    free(handle);
    napi_throw_error(env, "ERR_WEFT_ENGINE", err);
    return NULL;
  }
  napi_value external;
  if (napi_create_external(env, handle, finalize_engine, NULL, &external) != napi_ok) {
    engine_free(handle->engine);
    free(handle);
    throw_last_error(env);
    return NULL;
  }
  return external;
}

static struct engine_handle *unwrap(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  void *data = NULL;
  if (type != napi_external || napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an engine handle from createEngine");
    return NULL;
  }
  return data;
}

// Replaces the pending exception (from a property reader) by a TypeError whose message starts with `where`.
static void prefix_pending_error(napi_env env, const char *where) {
  napi_value error, message;
  if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
  char text[ERR_LEN] = "invalid value";
  size_t copied = 0;
  if (napi_get_named_property(env, error, "message", &message) == napi_ok) {
    napi_get_value_string_utf8(env, message, text, sizeof(text), &copied);
  }
  char full[ERR_LEN + 128];
  snprintf(full, sizeof(full), "%s: %s", where, text);
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", full);
}

static napi_value set_peers(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "%s", "setPeers(handle, peers): two arguments expected");
  struct engine_handle *handle = unwrap(env, argv[0]);
  if (!handle) return NULL;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "%s", "setPeers: peers must be an array");
  uint32_t count = 0;
  CHECK(env, napi_get_array_length(env, argv[1], &count));
  struct peer *peers = calloc(count ? count : 1, sizeof(struct peer));
  if (!peers) {
    napi_throw_error(env, "ERR_WEFT_ENGINE", "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_valuetype type = napi_undefined;
    char subnet[64], address[64], where[96];
    int64_t port;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok) goto fail;
    napi_typeof(env, item, &type);
    snprintf(where, sizeof(where), "setPeers: peers[%u]", i);
    if (type != napi_object) {
      throw_type(env, "%s must be an object", where);
      goto fail;
    }
    if (get_string(env, item, "subnet", subnet, sizeof(subnet), 1) < 0 ||
        get_string(env, item, "address", address, sizeof(address), 1) < 0 ||
        get_int(env, item, "port", 1, 65535, &port) < 0) {
      prefix_pending_error(env, where);
      goto fail;
    }
    struct peer *p = &peers[i];
    if (parse_prefix(subnet, &p->network, &p->prefix_len) != 0) {
      throw_type(env, "%s.subnet is not an IPv4 prefix a.b.c.d/len without host bits", where);
      goto fail;
    }
    if (parse_address(address, &p->address) != 0) {
      throw_type(env, "%s.address is not an IPv4 address", where);
      goto fail;
    }
    p->port = (uint16_t)port;
    p->sockaddr.sin_family = AF_INET;
    p->sockaddr.sin_port = htons(p->port);
    p->sockaddr.sin_addr.s_addr = htonl(p->address);
  }
  if (!handle->engine || engine_set_peers(handle->engine, peers, count) != 0) {
    napi_throw_error(env, "ERR_WEFT_ENGINE", "setPeers: out of memory");
    goto fail;
  }
  free(peers);
  return NULL;
fail:
  free(peers);
  return NULL;
}

static napi_status set_number(napi_env env, napi_value obj, const char *key, double value) {
  napi_value v;
  napi_status status = napi_create_double(env, value, &v);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, obj, key, v);
}

static napi_status set_bool(napi_env env, napi_value obj, const char *key, int value) {
  napi_value v;
  napi_status status = napi_get_boolean(env, value != 0, &v);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, obj, key, v);
}

static napi_value stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct engine_handle *handle = argc ? unwrap(env, arg) : NULL;
  if (!handle) return argc ? NULL : throw_type(env, "%s", "stats(handle): handle missing");
  struct engine_stats s;
  engine_read_stats(handle->engine, &s);
  napi_value result, drops, features;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_object(env, &drops));
  CHECK(env, napi_create_object(env, &features));
  // Counters are below 2^53 for centuries at line rate, so doubles hold them exactly.
  for (int i = 0; i < COUNTER_COUNT; i++) CHECK(env, set_number(env, result, counter_names[i], (double)s.counters[i]));
  for (int i = 0; i < DROP_REASON_COUNT; i++) CHECK(env, set_number(env, drops, drop_reason_names[i], (double)s.drops[i]));
  CHECK(env, set_bool(env, features, "vnetHdr", s.vnet_hdr));
  CHECK(env, set_bool(env, features, "udpGso", s.udp_gso));
  CHECK(env, set_bool(env, features, "udpGro", s.udp_gro));
  CHECK(env, napi_set_named_property(env, result, "drops", drops));
  CHECK(env, napi_set_named_property(env, result, "features", features));
  CHECK(env, set_number(env, result, "peers", (double)s.peers));
  CHECK(env, set_bool(env, result, "running", s.running));
  return result;
}

static napi_value stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  CHECK(env, napi_get_cb_info(env, info, &argc, &arg, NULL, NULL));
  struct engine_handle *handle = argc ? unwrap(env, arg) : NULL;
  if (!handle) return argc ? NULL : throw_type(env, "%s", "stop(handle): handle missing");
  engine_stop(handle->engine);
  return NULL;
}

// Reads the optional netns path argument (argv[i] a string, or absent/undefined). Returns 1 when given,
// 0 when not, -1 with a pending exception.
static int optional_netns(napi_env env, size_t argc, napi_value *argv, size_t i, char *out, size_t len) {
  if (argc <= i) return 0;
  napi_valuetype type = napi_undefined;
  napi_typeof(env, argv[i], &type);
  if (type == napi_undefined) return 0;
  if (type != napi_string) {
    throw_type(env, "%s", "netns must be a string (a path such as /run/netns/NAME)");
    return -1;
  }
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, argv[i], out, len, &copied) != napi_ok) return -1;
  if (copied == 0 || copied >= len - 1) {
    throw_type(env, "%s", "netns path is empty or too long");
    return -1;
  }
  return 1;
}

static napi_value rtnl_transact_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_typed = false;
  if (argc >= 1) napi_is_typedarray(env, argv[0], &is_typed);
  if (!is_typed) return throw_type(env, "%s", "rtnlTransact: requests must be a Uint8Array");
  napi_typedarray_type ttype;
  size_t length = 0, byte_offset = 0;
  void *data = NULL;
  napi_value arraybuffer;
  CHECK(env, napi_get_typedarray_info(env, argv[0], &ttype, &length, &data, &arraybuffer, &byte_offset));
  if (ttype != napi_uint8_array) return throw_type(env, "%s", "rtnlTransact: requests must be a Uint8Array");
  char netns[PATH_MAX];
  int has_netns = optional_netns(env, argc, argv, 1, netns, sizeof(netns));
  if (has_netns < 0) return NULL;
  long count = length == 0 ? 0 : rtnl_number(data, length, 1);
  if (count < 0) return throw_type(env, "%s", "rtnlTransact: requests are not a run of whole netlink messages");
  napi_value result;
  CHECK(env, napi_create_array_with_length(env, (size_t)count, &result));
  if (count == 0) return result;
  struct rtnl_ack *acks = calloc((size_t)count, sizeof(*acks));
  if (!acks) {
    napi_throw_error(env, "ERR_WEFT_RTNL", "out of memory");
    return NULL;
  }
  char err[ERR_LEN];
  if (rtnl_transact(has_netns ? netns : NULL, data, length, (uint32_t)count, acks, err, sizeof(err)) != 0) {
    free(acks);
    napi_throw_error(env, "ERR_WEFT_RTNL", err);
    return NULL;
  }
  for (long i = 0; i < count; i++) {
    napi_value item;
    if (acks[i].error == 0) {
      if (napi_create_int32(env, 0, &item) != napi_ok) goto fail;
    } else {
      napi_value value;
      if (napi_create_object(env, &item) != napi_ok) goto fail;
      if (napi_create_int32(env, acks[i].error, &value) != napi_ok ||
          napi_set_named_property(env, item, "errno", value) != napi_ok)
        goto fail;
      if (napi_create_string_utf8(env, strerror(acks[i].error), NAPI_AUTO_LENGTH, &value) != napi_ok ||
          napi_set_named_property(env, item, "text", value) != napi_ok)
        goto fail;
      if (napi_create_string_utf8(env, acks[i].message, NAPI_AUTO_LENGTH, &value) != napi_ok ||
          napi_set_named_property(env, item, "message", value) != napi_ok)
        goto fail;
    }
    if (napi_set_element(env, result, (uint32_t)i, item) != napi_ok) goto fail;
  }
  free(acks);
  return result;
fail:
  free(acks);
  throw_last_error(env);
  return NULL;
}

static napi_value rtnl_ifindexes_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_array = false;
  if (argc >= 1) napi_is_array(env, argv[0], &is_array);
  if (!is_array) return throw_type(env, "%s", "rtnlIfindexes: names must be an array of strings");
  char netns[PATH_MAX];
  int has_netns = optional_netns(env, argc, argv, 1, netns, sizeof(netns));
  if (has_netns < 0) return NULL;
  uint32_t n = 0;
  CHECK(env, napi_get_array_length(env, argv[0], &n));
  if (n > 4096) return throw_type(env, "%s", "rtnlIfindexes: more than 4096 names");
  char(*names)[IF_NAMESIZE] = calloc(n ? n : 1, IF_NAMESIZE);
  const char **pointers = calloc(n ? n : 1, sizeof(char *));
  uint32_t *indexes = calloc(n ? n : 1, sizeof(uint32_t));
  napi_value result = NULL;
  if (!names || !pointers || !indexes) {
    napi_throw_error(env, "ERR_WEFT_RTNL", "out of memory");
    goto done;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    napi_valuetype type = napi_undefined;
    size_t copied = 0;
    if (napi_get_element(env, argv[0], i, &item) != napi_ok) goto napi_fail;
    napi_typeof(env, item, &type);
    if (type != napi_string) {
      throw_type(env, "%s", "rtnlIfindexes: names must be an array of strings");
      goto done;
    }
    // One byte more than a name may have, so a longer one shows as longer instead of silently cut.
    char name[IF_NAMESIZE + 1];
    if (napi_get_value_string_utf8(env, item, name, sizeof(name), &copied) != napi_ok) goto napi_fail;
    if (copied == 0 || copied > IF_NAMESIZE - 1) {
      throw_type(env, "%s", "rtnlIfindexes: a name is empty or longer than 15 bytes");
      goto done;
    }
    memcpy(names[i], name, copied + 1);
    pointers[i] = names[i];
  }
  char err[ERR_LEN];
  if (rtnl_ifindexes(has_netns ? netns : NULL, pointers, n, indexes, err, sizeof(err)) != 0) {
    napi_throw_error(env, "ERR_WEFT_RTNL", err);
    goto done;
  }
  if (napi_create_array_with_length(env, n, &result) != napi_ok) goto napi_fail;
  for (uint32_t i = 0; i < n; i++) {
    napi_value value;
    if (napi_create_uint32(env, indexes[i], &value) != napi_ok ||
        napi_set_element(env, result, i, value) != napi_ok)
      goto napi_fail;
  }
  goto done;
napi_fail:
  result = NULL;
  throw_last_error(env);
done:
  free(names);
  free(pointers);
  free(indexes);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openTun", NULL, open_tun, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createEngine", NULL, create_engine, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setPeers", NULL, set_peers, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stop", NULL, stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rtnlTransact", NULL, rtnl_transact_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rtnlIfindexes", NULL, rtnl_ifindexes_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
