/*
 * Config tests: files written to a temporary directory and loaded (every
 * field, defaults, each validation error with its exact FILE:LINE text), the
 * duration, size and address parsers, route matching, sticky options and
 * the sticky key, the TLS directives (with certificates made at run time),
 * reference counting, and that conf/sluice.conf and docs/configuration.md
 * agree with the tables.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "tls.h"
#include "tls_fixture.h"

static char dir[64];
static char tls_dir[64];		/* certificates for the TLS tests */

static int
group_setup(void **state)
{
	static const char *const names[] = { "www.example.com", NULL };
	EVP_PKEY *rsa, *ec;
	X509 *x;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sluice-test-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	fx_dir_make(tls_dir, "test-config-tls");
	rsa = fx_key_rsa();
	ec = fx_key_ec();
	x = fx_cert(rsa, &(struct fx_cert_spec){ .cn = "www", .dns = names, .to_days = 30 });
	fx_write_certs(fx_path(tls_dir, "rsa.pem"), x, NULL, NULL);
	fx_write_key(fx_path(tls_dir, "rsa.key"), rsa);
	X509_free(x);
	x = fx_cert(ec, &(struct fx_cert_spec){ .cn = "www", .dns = names, .to_days = 30 });
	fx_write_certs(fx_path(tls_dir, "ec.pem"), x, NULL, ec);
	fx_write_key(fx_path(tls_dir, "ec.key"), ec);
	fx_write_certs(fx_path(tls_dir, "ca.pem"), x, NULL, NULL);
	X509_free(x);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	/* 80 bytes of base64: a ticket key. */
	fx_write_text(fx_path(tls_dir, "tickets.key"), "# keys\n"
		"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFi"
		"Y2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
	fx_write_text(fx_path(tls_dir, "bad-tickets.key"), "\n\nnot base64\n");
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	fx_dir_remove(tls_dir);
	return rmdir(dir);
}

/* Writes dir/t.conf; returns its path (static storage). */
static const char *
write_conf(const char *text)
{
	static char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/t.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static struct config *
load_text(const char *text, char *err, size_t errlen)
{
	const char *path = write_conf(text);
	struct config *cfg = config_load(path, err, errlen);

	unlink(path);
	return cfg;
}

static struct config *
load_ok(const char *text)
{
	char err[512] = "";
	struct config *cfg = load_text(text, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("unexpected error: %s", err);
	return cfg;
}

/* want is what follows the file name: ":LINE: message" or ": message". */
static void
expect_error(const char *text, const char *want)
{
	char err[512] = "", full[700];
	struct config *cfg = load_text(text, err, sizeof(err));

	snprintf(full, sizeof(full), "%s/t.conf%s", dir, want);
	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("loaded, but expected: %s", full);
	}
	assert_string_equal(err, full);
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void
assert_ipv4(const struct sockaddr_storage *ss, socklen_t len, const char *ip, unsigned port)
{
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_non_null(inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(port_of(ss), port);
}

static void
assert_ipv6(const struct sockaddr_storage *ss, socklen_t len, const char *ip, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_non_null(inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, ip);
	assert_int_equal(port_of(ss), port);
}

/* ------------------------------------------------------------------ load */

static const char full_conf[] =
	"# every directive set to something other than its default\n"
	"workers = 3\n"
	"log_level = debug\n"
	"access_log = \"/var/log/sluice/access.log\"\n"
	"shutdown_timeout = 2m\n"
	"sticky_key = \"0123456789abcdef-key\"\n"
	"listener \"web\" { address = \"0.0.0.0:8080\" backlog = 128 }\n"
	"listener \"v6\" {\n"
	"  address = \"[::1]:8443\"\n"
	"}\n"
	"// routes may name pools defined further down\n"
	"route \"api\" { host = \"API.Example.com\" path = /api pool = chat\n"
	"  sticky = \"socketio,cookie\" sticky_cookie = \"SID_x\" }\n"
	"route \"all\" { pool = \"static\" }\n"
	"route \"sub\" { host = \"*.example.com\" path = \"/\" pool = \"chat\" sticky = socketio }\n"
	"pool \"chat\" {\n"
	"  retries = 5\n"
	"  keepalive = 0\n"
	"  balance = hash\n"
	"  hash_key = \"header:X-User\"\n"
	"  server \"a\" { address = \"127.0.0.1:3001\" weight = 2 }\n"
	"  server \"b\" { address = \"127.0.0.2:3002\" weight = 1000 }\n"
	"}\n"
	"pool \"static\" {\n"
	"  /* a server may share a name with one of another pool */\n"
	"  server \"a\" { address = \"[::1]:4000\" }\n"
	"}\n"
	"timeouts {\n"
	"  client_header = 1s\n"
	"  client_idle = 2s\n"
	"  connect = 250ms\n"
	"  response_header = 4\n"
	"  body_idle = 1h\n"
	"  upstream_idle = 90s\n"
	"  tunnel_idle = 50s\n"
	"}\n"
	"limits {\n"
	"  max_header_size = 32k\n"
	"  max_headers = 50\n"
	"  max_uri = 2K\n"
	"  ws_max_message = 4g\n"
	"}\n";

static void
test_load_full(void **state)
{
	struct config *cfg;
	const struct config_pool *chat, *stat;

	(void)state;
	cfg = load_ok(full_conf);
	assert_int_equal(atomic_load(&cfg->refcnt), 1);
	assert_null(cfg->on_free);
	assert_non_null(strstr(cfg->file, "/t.conf"));
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->log_level, CONFIG_LOG_DEBUG);
	assert_string_equal(cfg->access_log, "/var/log/sluice/access.log");

	assert_int_equal(cfg->timeouts.client_header_ms, 1000);
	assert_int_equal(cfg->timeouts.client_idle_ms, 2000);
	assert_int_equal(cfg->timeouts.connect_ms, 250);
	assert_int_equal(cfg->timeouts.response_header_ms, 4000);
	assert_int_equal(cfg->timeouts.body_idle_ms, 3600 * 1000);
	assert_int_equal(cfg->timeouts.upstream_idle_ms, 90 * 1000);
	assert_int_equal(cfg->timeouts.shutdown_ms, 120 * 1000);
	assert_int_equal(cfg->timeouts.tunnel_idle_ms, 50 * 1000);
	assert_int_equal(cfg->limits.max_header_size, 32 * 1024);
	assert_int_equal(cfg->limits.max_headers, 50);
	assert_int_equal(cfg->limits.max_uri, 2048);
	assert_true(cfg->limits.ws_max_message == 4ULL << 30);
	assert_int_equal(cfg->sticky_key_len, 20);
	assert_memory_equal(cfg->sticky_key, "0123456789abcdef-key", 20);
	assert_false(cfg->sticky_key_random);

	assert_int_equal(cfg->nlisteners, 2);
	assert_string_equal(cfg->listeners[0].name, "web");
	assert_string_equal(cfg->listeners[0].address, "0.0.0.0:8080");
	assert_ipv4(&cfg->listeners[0].addr, cfg->listeners[0].addrlen, "0.0.0.0", 8080);
	assert_int_equal(cfg->listeners[0].backlog, 128);
	assert_string_equal(cfg->listeners[1].name, "v6");
	assert_string_equal(cfg->listeners[1].address, "[::1]:8443");
	assert_ipv6(&cfg->listeners[1].addr, cfg->listeners[1].addrlen, "::1", 8443);
	assert_int_equal(cfg->listeners[1].backlog, 511);

	assert_int_equal(cfg->npools, 2);
	assert_int_equal(cfg->nservers, 3);
	chat = &cfg->pools[0];
	stat = &cfg->pools[1];
	assert_string_equal(chat->name, "chat");
	assert_int_equal(chat->index, 0);
	assert_int_equal(chat->retries, 5);
	assert_int_equal(chat->keepalive_max, 0);
	assert_string_equal(chat->balance, "hash");
	assert_true(chat->keyed);
	assert_int_equal(chat->hash_key, CONFIG_HASH_HEADER);
	assert_string_equal(chat->hash_key_name, "X-User");
	assert_null(chat->rt);
	assert_int_equal(chat->nservers, 2);
	assert_string_equal(chat->servers[0].name, "a");
	assert_string_equal(chat->servers[0].address, "127.0.0.1:3001");
	assert_ipv4(&chat->servers[0].addr, chat->servers[0].addrlen, "127.0.0.1", 3001);
	assert_int_equal(chat->servers[0].weight, 2);
	assert_int_equal(chat->servers[0].index, 0);
	assert_int_equal(chat->servers[0].gindex, 0);
	assert_ptr_equal(chat->servers[0].pool, chat);
	assert_string_equal(chat->servers[1].name, "b");
	assert_ipv4(&chat->servers[1].addr, chat->servers[1].addrlen, "127.0.0.2", 3002);
	assert_int_equal(chat->servers[1].weight, 1000);
	assert_int_equal(chat->servers[1].index, 1);
	assert_int_equal(chat->servers[1].gindex, 1);
	assert_ptr_equal(chat->servers[1].pool, chat);

	assert_string_equal(stat->name, "static");
	assert_int_equal(stat->index, 1);
	assert_int_equal(stat->retries, 2);
	assert_int_equal(stat->keepalive_max, 32);
	assert_int_equal(stat->nservers, 1);
	assert_string_equal(stat->servers[0].name, "a");
	assert_ipv6(&stat->servers[0].addr, stat->servers[0].addrlen, "::1", 4000);
	assert_int_equal(stat->servers[0].weight, 1);
	assert_int_equal(stat->servers[0].index, 0);
	assert_int_equal(stat->servers[0].gindex, 2);
	assert_ptr_equal(stat->servers[0].pool, stat);

	/* Routes come in match order: exact, suffix, any. */
	assert_int_equal(cfg->nroutes, 3);
	assert_string_equal(cfg->routes[0].name, "api");
	assert_int_equal(cfg->routes[0].host_kind, CONFIG_HOST_EXACT);
	assert_string_equal(cfg->routes[0].host, "api.example.com");
	assert_int_equal(cfg->routes[0].host_len, strlen("api.example.com"));
	assert_string_equal(cfg->routes[0].path, "/api");
	assert_int_equal(cfg->routes[0].path_len, 4);
	assert_ptr_equal(cfg->routes[0].pool, chat);
	assert_string_equal(cfg->routes[0].pool_name, "chat");
	assert_int_equal(cfg->routes[0].index, 0);
	assert_int_equal(cfg->routes[0].sticky, CONFIG_STICKY_COOKIE | CONFIG_STICKY_SOCKETIO);
	assert_string_equal(cfg->routes[0].sticky_cookie, "SID_x");
	assert_string_equal(cfg->routes[1].name, "sub");
	assert_int_equal(cfg->routes[1].sticky, CONFIG_STICKY_SOCKETIO);
	assert_string_equal(cfg->routes[1].sticky_cookie, "sluice");
	assert_int_equal(cfg->routes[1].host_kind, CONFIG_HOST_SUFFIX);
	assert_string_equal(cfg->routes[1].host, ".example.com");
	assert_int_equal(cfg->routes[1].host_len, strlen(".example.com"));
	assert_string_equal(cfg->routes[1].path, "/");
	assert_ptr_equal(cfg->routes[1].pool, chat);
	assert_int_equal(cfg->routes[1].index, 2);
	assert_string_equal(cfg->routes[2].name, "all");
	assert_int_equal(cfg->routes[2].host_kind, CONFIG_HOST_ANY);
	assert_string_equal(cfg->routes[2].host, "*");
	assert_string_equal(cfg->routes[2].path, "/");
	assert_int_equal(cfg->routes[2].path_len, 1);
	assert_ptr_equal(cfg->routes[2].pool, stat);
	assert_string_equal(cfg->routes[2].pool_name, "static");
	assert_int_equal(cfg->routes[2].index, 1);
	assert_int_equal(cfg->routes[2].sticky, 0);
	assert_string_equal(cfg->routes[2].sticky_cookie, "sluice");
	config_unref(cfg);
}

static void
test_load_defaults(void **state)
{
	struct config *cfg;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	cfg = load_ok("listener \"l\" { address = \"*:80\" }\n"
		"pool \"p\" { server \"s\" { address = \"10.0.0.1:80\" } }\n"
		"route \"r\" { pool = \"p\" }\n");
	assert_int_equal(cfg->workers, ncpu < 1 ? 1 : ncpu > 64 ? 64 : ncpu);
	assert_int_equal(cfg->log_level, CONFIG_LOG_INFO);
	assert_string_equal(cfg->access_log, "-");
	assert_int_equal(cfg->timeouts.client_header_ms, 10000);
	assert_int_equal(cfg->timeouts.client_idle_ms, 60000);
	assert_int_equal(cfg->timeouts.connect_ms, 3000);
	assert_int_equal(cfg->timeouts.response_header_ms, 30000);
	assert_int_equal(cfg->timeouts.body_idle_ms, 60000);
	assert_int_equal(cfg->timeouts.upstream_idle_ms, 60000);
	assert_int_equal(cfg->timeouts.shutdown_ms, 30000);
	assert_int_equal(cfg->timeouts.tunnel_idle_ms, 120000);
	assert_int_equal(cfg->limits.max_header_size, 16 * 1024);
	assert_int_equal(cfg->limits.max_headers, 100);
	assert_int_equal(cfg->limits.max_uri, 8 * 1024);
	assert_true(cfg->limits.ws_max_message == 64ULL << 20);
	/* No cookie stickiness: no key, not even a random one. */
	assert_null(cfg->sticky_key);
	assert_int_equal(cfg->sticky_key_len, 0);
	assert_false(cfg->sticky_key_random);
	assert_int_equal(cfg->routes[0].sticky, 0);
	assert_string_equal(cfg->routes[0].sticky_cookie, "sluice");
	assert_int_equal(cfg->listeners[0].backlog, 511);
	assert_ipv4(&cfg->listeners[0].addr, cfg->listeners[0].addrlen, "0.0.0.0", 80);
	assert_int_equal(cfg->pools[0].retries, 2);
	assert_int_equal(cfg->pools[0].keepalive_max, 32);
	assert_string_equal(cfg->pools[0].balance, "roundrobin");
	assert_false(cfg->pools[0].keyed);
	assert_int_equal(cfg->pools[0].hash_key, CONFIG_HASH_CLIENT);
	assert_null(cfg->pools[0].hash_key_name);
	assert_int_equal(cfg->pools[0].servers[0].weight, 1);
	assert_int_equal(cfg->routes[0].host_kind, CONFIG_HOST_ANY);
	assert_string_equal(cfg->routes[0].path, "/");
	assert_ptr_equal(cfg->routes[0].pool, &cfg->pools[0]);
	config_unref(cfg);

	/* Routes are optional; access_log "off" is NULL. */
	cfg = load_ok("access_log = off\n"
		"listener \"l\" { address = \"127.0.0.1:80\" }\n"
		"pool \"p\" { server \"s\" { address = \"10.0.0.1:80\" } }\n");
	assert_null(cfg->access_log);
	assert_int_equal(cfg->nroutes, 0);
	assert_null(config_route_match(cfg, "x", 1, "/", 1));
	config_unref(cfg);

	/* A default max_uri follows a max_header_size below it. */
	cfg = load_ok("limits { max_header_size = 1k }\n"
		"listener \"l\" { address = \"127.0.0.1:80\" }\n"
		"pool \"p\" { server \"s\" { address = \"10.0.0.1:80\" } }\n");
	assert_int_equal(cfg->limits.max_header_size, 1024);
	assert_int_equal(cfg->limits.max_uri, 1023);
	config_unref(cfg);
}

/* Four lines that make a valid file; errors appended start on line 5. */
#define BASE \
	"listener \"web\" { address = \"0.0.0.0:8080\" }\n" \
	"pool \"p\" {\n" \
	"  server \"a\" { address = \"127.0.0.1:3001\" }\n" \
	"}\n"

struct error_case {
	const char *text;
	const char *want;
};

static const struct error_case syntax_errors[] = {
	/* Line numbers stay right after every kind of comment. */
	{ "# a\n# b\nwrokers = 3\n", ":3: no such option \"wrokers\"" },
	{ "# c\n// c\n/* a\n b */ # c\n\nwrokers = 3\n", ":6: no such option \"wrokers\"" },
	{ "workers = 2 # c\nlog_level = info // c\naccess_log = \"a#b\" /* c */\nbogus = 1\n",
	  ":4: no such option \"bogus\"" },
	{ "access_log = \"x\ny\"\nbogus = 1\n", ":3: no such option \"bogus\"" },
	{ BASE "pool \"q\" {\n  # c\n  retires = 1\n}\n", ":7: pool \"q\": no such option \"retires\"" },
	{ BASE "upstream \"u\" {\n}\n", ":5: no such option \"upstream\"" },
	{ "workers 2\n", ":1: missing equal sign after option \"workers\"" },
	{ "workers = 2\n}\n", ":2: unexpected closing brace" },
	{ BASE "route \"r\" {\n  pool = p\n", ":5: route \"r\" is not closed (missing \"}\")" },
	{ BASE "# c\naccess_log = \"/tmp/x\n", ":6: unterminated string" },
	{ BASE "/* never\nclosed\n", ":5: unterminated comment" },
	{ "workers = 1\n# x\nworkers = 2\n", ":3: duplicate option \"workers\" (first set at line 1)" },
	{ "timeouts {\n}\ntimeouts {\n}\n", ":3: duplicate timeouts section (first at line 1)" },
};

static const struct error_case value_errors[] = {
	{ "listener \"web\" { address = \"0.0.0.0:8080\" }\n"
	  "# comment\n"
	  "/* multi\n   line */\n"
	  "pool \"chat\" {\n"
	  "  server \"ok\" { address = \"127.0.0.1:1\" }\n"
	  "  server \"a\" { address = \"127.0.0.1\" }\n"
	  "}\n",
	  ":7: pool \"chat\": server \"a\": invalid address \"127.0.0.1\" (expected IP:PORT)" },
	/* A host name is for DNS discovery (test_dns.c), and needs a port. */
	{ BASE "pool \"q\" { server \"s\" { address = \"localhost\" } }\n",
	  ":5: pool \"q\": server \"s\": invalid address \"localhost\" (a host name needs a port, as in \"localhost:3000\")" },
	{ BASE "listener \"x\" { address = \"localhost:3001\" }\n",
	  ":5: listener \"x\": invalid address \"localhost:3001\" (address must be a numeric IP:port)" },
	{ BASE "listener \"x\" {\n  address = \"1.2.3.4:0\"\n}\n",
	  ":6: listener \"x\": invalid address \"1.2.3.4:0\" (port must be 1..65535)" },
	{ BASE "listener \"x\" { address = \"::1:80\" }\n",
	  ":5: listener \"x\": invalid address \"::1:80\" (IPv6 addresses go in brackets, as in [::1]:8080)" },
	{ "workers = 0\n", ":1: invalid workers \"0\" (must be in 1..64)" },
	{ "\nworkers = 65\n", ":2: invalid workers \"65\" (must be in 1..64)" },
	{ "workers = two\n", ":1: invalid workers \"two\" (expected an integer)" },
	{ "workers = -1\n", ":1: invalid workers \"-1\" (expected an integer)" },
	{ "log_level = verbose\n", ":1: invalid log_level \"verbose\" (expected error, warn, info or debug)" },
	{ "access_log = \"\"\n", ":1: invalid access_log \"\" (expected \"-\", \"off\" or a file path)" },
	{ "shutdown_timeout = 0\n", ":1: invalid shutdown_timeout \"0\" (must be in 1ms..24h)" },
	{ BASE "pool \"q\" {\n  server \"s\" {\n    address = \"1.1.1.1:1\"\n    weight = 0\n  }\n}\n",
	  ":8: pool \"q\": server \"s\": invalid weight \"0\" (must be in 1..1000)" },
	{ BASE "pool \"q\" { server \"s\" { weight = 1001 } }\n",
	  ":5: pool \"q\": server \"s\": invalid weight \"1001\" (must be in 1..1000)" },
	{ BASE "pool \"q\" {\n  retries = 101\n}\n", ":6: pool \"q\": invalid retries \"101\" (must be in 0..100)" },
	{ BASE "pool \"q\" {\n  keepalive = 10001\n}\n",
	  ":6: pool \"q\": invalid keepalive \"10001\" (must be in 0..10000)" },
	{ BASE "listener \"x\" { backlog = 0 }\n", ":5: listener \"x\": invalid backlog \"0\" (must be in 1..65535)" },
	{ BASE "pool \"q\" {\n  balance = fastest\n}\n",
	  ":6: pool \"q\": invalid balance \"fastest\" (expected roundrobin, leastconn, hash or random2)" },
	{ BASE "pool \"q\" { balance = \"Hash\" }\n",
	  ":5: pool \"q\": invalid balance \"Hash\" (expected roundrobin, leastconn, hash or random2)" },
	{ BASE "pool \"q\" {\n  balance = hash\n  hash_key = ip\n}\n",
	  ":7: pool \"q\": invalid hash_key \"ip\" (expected client, \"header:NAME\", \"cookie:NAME\" "
	  "or \"query:NAME\")" },
	{ BASE "pool \"q\" { balance = hash hash_key = \"header:\" }\n",
	  ":5: pool \"q\": invalid hash_key \"header:\" (expected a header field name of 1 to 64 "
	  "characters after \"header:\")" },
	{ BASE "pool \"q\" { balance = hash hash_key = \"header:X User\" }\n",
	  ":5: pool \"q\": invalid hash_key \"header:X User\" (expected a header field name of 1 to 64 "
	  "characters after \"header:\")" },
	{ BASE "pool \"q\" { balance = hash hash_key = \"cookie:a;b\" }\n",
	  ":5: pool \"q\": invalid hash_key \"cookie:a;b\" (expected a cookie name of 1 to 64 "
	  "characters after \"cookie:\")" },
	{ BASE "pool \"q\" { balance = hash hash_key = \"query:a&b\" }\n",
	  ":5: pool \"q\": invalid hash_key \"query:a&b\" (expected a query parameter name of 1 to 64 "
	  "characters after \"query:\")" },
	{ BASE "pool \"q\" { balance = hash hash_key = \"Header:X\" }\n",
	  ":5: pool \"q\": invalid hash_key \"Header:X\" (expected client, \"header:NAME\", "
	  "\"cookie:NAME\" or \"query:NAME\")" },
	{ BASE "pool \"q\" {\n  balance = leastconn\n  hash_key = \"cookie:u\"\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n",
	  ":7: pool \"q\": hash_key is set but balance = leastconn (only hash uses it)" },
	{ BASE "pool \"q\" {\n  hash_key = client\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n",
	  ":6: pool \"q\": hash_key is set but balance = roundrobin (only hash uses it)" },
	{ "timeouts {\n  connect = 0s\n}\n", ":2: timeouts: invalid connect \"0s\" (must be in 1ms..24h)" },
	{ "timeouts {\n\n  client_idle = \"3 s\"\n}\n",
	  ":3: timeouts: invalid client_idle \"3 s\" (expected a duration such as 500ms, 10s, 2m or 1h)" },
	{ "timeouts {\n  body_idle = 25h\n}\n", ":2: timeouts: invalid body_idle \"25h\" (must be in 1ms..24h)" },
	{ "timeouts {\n  tunnel_idle = 0\n}\n", ":2: timeouts: invalid tunnel_idle \"0\" (must be in 1ms..24h)" },
	{ "timeouts {\n  tunnel_idle = 2d\n}\n",
	  ":2: timeouts: invalid tunnel_idle \"2d\" (expected a duration such as 500ms, 10s, 2m or 1h)" },
	{ "limits {\n  ws_max_message = 1023\n}\n",
	  ":2: limits: invalid ws_max_message \"1023\" (must be in 1k..4g)" },
	{ "limits {\n\n  ws_max_message = 4097m\n}\n",
	  ":3: limits: invalid ws_max_message \"4097m\" (must be in 1k..4g)" },
	{ "limits {\n  ws_max_message = 1t\n}\n",
	  ":2: limits: invalid ws_max_message \"1t\" (expected a size such as 512, 16k or 1m)" },
	{ "limits {\n  ws_max_message = 99999999999999999999g\n}\n",
	  ":2: limits: invalid ws_max_message \"99999999999999999999g\" (expected a size such as 512, 16k or 1m)" },
	{ BASE "route \"r\" {\n  pool = p\n  sticky = sid\n}\n",
	  ":7: route \"r\": invalid sticky \"sid\" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" { pool = p sticky = \"off cookie\" }\n",
	  ":5: route \"r\": invalid sticky \"off cookie\" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" { pool = p sticky = \"\" }\n",
	  ":5: route \"r\": invalid sticky \"\" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" { pool = p sticky = \" , \" }\n",
	  ":5: route \"r\": invalid sticky \" , \" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" { pool = p sticky = \"cookie;socketio\" }\n",
	  ":5: route \"r\": invalid sticky \"cookie;socketio\" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" { pool = p sticky = Cookie }\n",
	  ":5: route \"r\": invalid sticky \"Cookie\" (expected off, cookie, socketio or \"cookie socketio\")" },
	{ BASE "route \"r\" {\n  pool = p\n  sticky_cookie = \"a b\"\n}\n",
	  ":7: route \"r\": invalid sticky_cookie \"a b\" (expected a cookie name of 1 to 64 letters, "
	  "digits or any of !#$%&'*+-.^_`|~)" },
	{ BASE "route \"r\" { pool = p sticky_cookie = \"a;b\" }\n",
	  ":5: route \"r\": invalid sticky_cookie \"a;b\" (expected a cookie name of 1 to 64 letters, "
	  "digits or any of !#$%&'*+-.^_`|~)" },
	{ BASE "route \"r\" { pool = p sticky_cookie = \"a=b\" }\n",
	  ":5: route \"r\": invalid sticky_cookie \"a=b\" (expected a cookie name of 1 to 64 letters, "
	  "digits or any of !#$%&'*+-.^_`|~)" },
	{ BASE "route \"r\" { pool = p sticky_cookie = \"\" }\n",
	  ":5: route \"r\": invalid sticky_cookie \"\" (expected a cookie name of 1 to 64 letters, "
	  "digits or any of !#$%&'*+-.^_`|~)" },
	{ BASE "route \"r\" { pool = p sticky_cookie = "
	  "\"x123456789x123456789x123456789x123456789x123456789x123456789x1234\" }\n",
	  ":5: route \"r\": invalid sticky_cookie "
	  "\"x123456789x123456789x123456789x123456789x123456789x123456789x1234\" (expected a cookie "
	  "name of 1 to 64 letters, digits or any of !#$%&'*+-.^_`|~)" },
	/* The key is a secret: its errors never quote it. */
	{ "\n\nsticky_key = \"short-secret\"\n", ":3: sticky_key must be at least 16 bytes" },
	{ "sticky_key = \"\"\n", ":1: sticky_key must be at least 16 bytes" },
	{ BASE "sticky_key = \"0123456789abcdef\"\n# c\nsticky_key = \"0123456789abcdef\"\n",
	  ":7: duplicate option \"sticky_key\" (first set at line 5)" },
	{ "limits {\n  max_header_size = 512\n}\n",
	  ":2: limits: invalid max_header_size \"512\" (must be in 1k..1m)" },
	{ "limits {\n  max_header_size = 2m\n}\n",
	  ":2: limits: invalid max_header_size \"2m\" (must be in 1k..1m)" },
	{ "limits {\n  max_headers = 0\n}\n", ":2: limits: invalid max_headers \"0\" (must be in 1..10000)" },
	{ "limits {\n  max_headers = 10001\n}\n", ":2: limits: invalid max_headers \"10001\" (must be in 1..10000)" },
	{ "limits {\n  max_uri = 32\n}\n", ":2: limits: invalid max_uri \"32\" (must be in 64..1m)" },
	{ "limits {\n  max_uri = 16x\n}\n",
	  ":2: limits: invalid max_uri \"16x\" (expected a size such as 512, 16k or 1m)" },
	{ "limits {\n  max_header_size = 4k\n  max_uri = 4k\n}\n",
	  ":3: limits: max_uri (4k) must be smaller than max_header_size (4k)" },
	{ BASE "route \"r\" {\n  path = \"api\"\n  pool = p\n}\n",
	  ":6: route \"r\": invalid path \"api\" (expected a path starting with \"/\")" },
	{ BASE "route \"r\" { path = \"/a b\" pool = p }\n",
	  ":5: route \"r\": invalid path \"/a b\" (a path prefix has no spaces, \"?\" or \"#\")" },
	{ BASE "route \"r\" { host = \"example.com:80\" pool = p }\n",
	  ":5: route \"r\": invalid host \"example.com:80\" (a route host has no port)" },
	{ BASE "route \"r\" { host = \"*example.com\" pool = p }\n",
	  ":5: route \"r\": invalid host \"*example.com\" (expected a host name, \"*.\" and a domain, or \"*\")" },
	{ BASE "route \"r\" { host = \"a..b\" pool = p }\n",
	  ":5: route \"r\": invalid host \"a..b\" (expected a host name, \"*.\" and a domain, or \"*\")" },
	{ BASE "route \"r\" { pool = \"a b\" }\n",
	  ":5: route \"r\": invalid pool \"a b\" (expected a name of 1 to 64 letters, digits, \"_\", \"-\" or \".\")" },
};

static const struct error_case structure_errors[] = {
	{ "", ": no listener defined (at least 1 required)" },
	{ "# only a comment\n", ": no listener defined (at least 1 required)" },
	{ "pool \"p\" { server \"a\" { address = \"1.1.1.1:1\" } }\n",
	  ": no listener defined (at least 1 required)" },
	{ "listener \"l\" { address = \"1.1.1.1:1\" }\n", ": no pool defined (at least 1 required)" },
	{ BASE "\npool \"q\" {\n  retries = 1\n}\n", ":6: pool \"q\": no server defined (at least 1 required)" },
	{ BASE "listener \"x\" {\n}\n", ":5: listener \"x\": address is required" },
	{ BASE "pool \"q\" {\n  server \"s\" {\n    weight = 2\n  }\n}\n", ":6: pool \"q\": server \"s\": address is required" },
	{ BASE "route \"r\" {\n  path = \"/\"\n}\n", ":5: route \"r\": pool is required" },
	{ BASE "\n\nroute \"all\" {\n  path = \"/\"\n  pool = \"nope\"\n}\n",
	  ":9: route \"all\": unknown pool \"nope\"" },
	{ BASE "route \"r\" { pool = p }\nroute \"r\" { path = \"/x\" pool = p }\n",
	  ":6: duplicate route \"r\" (first defined at line 5)" },
	{ BASE "# c\nlistener \"web\" { address = \"0.0.0.0:8081\" }\n",
	  ":6: duplicate listener \"web\" (first defined at line 1)" },
	{ BASE "pool \"p\" {\n  server \"b\" { address = \"1.1.1.1:1\" }\n}\n",
	  ":5: duplicate pool \"p\" (first defined at line 2)" },
	{ "listener \"l\" { address = \"1.1.1.1:1\" }\n"
	  "pool \"p\" {\n"
	  "  server \"a\" { address = \"127.0.0.1:1\" }\n"
	  "  server \"a\" { address = \"127.0.0.1:2\" }\n"
	  "}\n",
	  ":4: pool \"p\": duplicate server \"a\" (first defined at line 3)" },
	{ BASE "listener \"w2\" {\n  address = \"*:8080\"\n}\n",
	  ":6: listener \"w2\": address \"*:8080\" is already used by listener \"web\"" },
	{ BASE "route \"r1\" { pool = p }\nroute \"r2\" { host = \"*\" path = \"/\" pool = p }\n",
	  ":6: route \"r2\": same host and path as route \"r1\"" },
	{ BASE "pool \"a/b\" {\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n",
	  ":5: invalid pool name \"a/b\" (expected 1 to 64 letters, digits, \"_\", \"-\" or \".\")" },
	{ BASE "listener \"\" { address = \"1.1.1.1:1\" }\n",
	  ":5: invalid listener name \"\" (expected 1 to 64 letters, digits, \"_\", \"-\" or \".\")" },
};

static void
run_cases(const struct error_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expect_error(cases[i].text, cases[i].want);
}

static void
test_syntax_errors(void **state)
{
	(void)state;
	run_cases(syntax_errors, sizeof(syntax_errors) / sizeof(syntax_errors[0]));
}

static void
test_value_errors(void **state)
{
	(void)state;
	run_cases(value_errors, sizeof(value_errors) / sizeof(value_errors[0]));
}

static void
test_structure_errors(void **state)
{
	(void)state;
	run_cases(structure_errors, sizeof(structure_errors) / sizeof(structure_errors[0]));
}

/* Values that load, and the sticky key's length bounds. */
static void
test_sticky_options(void **state)
{
	static const struct {
		const char *text;
		unsigned bits;
	} modes[] = {
		{ "off", 0 }, { "\"off\"", 0 }, { "cookie", CONFIG_STICKY_COOKIE },
		{ "socketio", CONFIG_STICKY_SOCKETIO },
		{ "\"cookie socketio\"", CONFIG_STICKY_COOKIE | CONFIG_STICKY_SOCKETIO },
		{ "\"socketio cookie\"", CONFIG_STICKY_COOKIE | CONFIG_STICKY_SOCKETIO },
		{ "\"cookie,socketio\"", CONFIG_STICKY_COOKIE | CONFIG_STICKY_SOCKETIO },
		{ "\" socketio ,\tcookie \"", CONFIG_STICKY_COOKIE | CONFIG_STICKY_SOCKETIO },
		{ "\"cookie cookie\"", CONFIG_STICKY_COOKIE },
	};
	char text[2048], err[512], want[600], key[1100];
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(text, sizeof(text), BASE "sticky_key = \"0123456789abcdef\"\n"
			"route \"r\" { pool = p sticky = %s }\n", modes[i].text);
		cfg = load_ok(text);
		if (cfg->routes[0].sticky != modes[i].bits)
			fail_msg("sticky = %s: got %u, want %u", modes[i].text, cfg->routes[0].sticky,
				modes[i].bits);
		config_unref(cfg);
	}
	cfg = load_ok(BASE "route \"r\" { pool = p sticky_cookie = \"__Host-a!#$%&'*+-.^_`|~9\" }\n");
	assert_string_equal(cfg->routes[0].sticky_cookie, "__Host-a!#$%&'*+-.^_`|~9");
	config_unref(cfg);

	/* 16 and 1024 bytes are the bounds; 1025 is refused without echoing it. */
	memset(key, 'k', 1024);
	key[1024] = '\0';
	snprintf(text, sizeof(text), BASE "sticky_key = \"%s\"\n", key);
	cfg = load_ok(text);
	assert_int_equal(cfg->sticky_key_len, 1024);
	assert_memory_equal(cfg->sticky_key, key, 1024);
	config_unref(cfg);
	cfg = load_ok(BASE "sticky_key = 0123456789abcdef\n");
	assert_int_equal(cfg->sticky_key_len, 16);
	config_unref(cfg);
	key[1024] = 'k';
	key[1025] = '\0';
	snprintf(text, sizeof(text), BASE "sticky_key = \"%s\"\n", key);
	assert_null(load_text(text, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/t.conf:5: sticky_key must be at most 1024 bytes", dir);
	assert_string_equal(err, want);

	/* The key may come from the environment. */
	assert_int_equal(setenv("SLUICE_TEST_STICKY_KEY", "from-the-environment", 1), 0);
	cfg = load_ok(BASE "sticky_key = \"${SLUICE_TEST_STICKY_KEY}\"\n");
	assert_int_equal(cfg->sticky_key_len, strlen("from-the-environment"));
	assert_memory_equal(cfg->sticky_key, "from-the-environment", cfg->sticky_key_len);
	config_unref(cfg);
	assert_int_equal(unsetenv("SLUICE_TEST_STICKY_KEY"), 0);
	assert_null(load_text(BASE "sticky_key = \"${SLUICE_TEST_STICKY_KEY}\"\n", err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/t.conf:5: sticky_key must be at least 16 bytes", dir);
	assert_string_equal(err, want);
}

/* The redis section: absent, defaults, every directive, and its errors. */
static void
test_redis_options(void **state)
{
	static const struct error_case errors[] = {
		{ BASE "redis {\n  on_error = fail\n}\n",
		  ":6: redis: invalid on_error \"fail\" (expected allow, deny or local)" },
		{ BASE "redis {\n  timeout = 0\n}\n",
		  ":6: redis: invalid timeout \"0\" (must be in 1ms..10s)" },
		{ BASE "redis {\n  lease_max = 0\n}\n",
		  ":6: redis: invalid lease_max \"0\" (must be in 1..10000)" },
		{ BASE "redis {\n  address = \"127.0.0.1\"\n}\n",
		  ":6: redis: invalid address \"127.0.0.1\" (expected IP:PORT)" },
		/* A secret: never quoted, even when it is wrong. */
		{ BASE "redis {\n  password = \"\"\n}\n",
		  ":6: redis: password must be at least 1 bytes" },
		{ BASE "redis {\n  prefix = \"\"\n}\n",
		  ":6: redis: invalid prefix \"\" (expected a non-empty string)" },
		{ BASE "redis { }\nredis { }\n",
		  ":6: duplicate redis section (first at line 5)" },
	};
	struct config *cfg;

	(void)state;
	cfg = load_ok(BASE);
	assert_false(cfg->redis_on);
	config_unref(cfg);

	cfg = load_ok(BASE "redis { }\n");
	assert_true(cfg->redis_on);
	assert_string_equal(cfg->redis.address, "127.0.0.1:6379");
	assert_int_equal(cfg->redis.addrlen, sizeof(struct sockaddr_in));
	assert_null(cfg->redis.user);
	assert_null(cfg->redis.password);
	assert_string_equal(cfg->redis.prefix, "sluice:rl:");
	assert_int_equal(cfg->redis.timeout_ms, 5);
	assert_int_equal(cfg->redis.on_error, CONFIG_REDIS_LOCAL);
	assert_int_equal(cfg->redis.lease_max, 256);
	config_unref(cfg);

	cfg = load_ok(BASE "redis {\n  address = \"redis.internal:6380\"\n  user = sluice\n"
		"  password = \"s3cret\"\n  prefix = \"edge:\"\n  timeout = 20ms\n"
		"  on_error = deny\n  lease_max = 8\n}\n");
	assert_string_equal(cfg->redis.address, "redis.internal:6380");
	assert_int_equal(cfg->redis.addrlen, 0);
	assert_string_equal(cfg->redis.user, "sluice");
	assert_int_equal(cfg->redis.password_len, 6);
	assert_memory_equal(cfg->redis.password, "s3cret", 6);
	assert_string_equal(cfg->redis.prefix, "edge:");
	assert_int_equal(cfg->redis.timeout_ms, 20);
	assert_int_equal(cfg->redis.on_error, CONFIG_REDIS_DENY);
	assert_int_equal(cfg->redis.lease_max, 8);
	config_unref(cfg);

	cfg = load_ok(BASE "redis { on_error = allow }\n");
	assert_int_equal(cfg->redis.on_error, CONFIG_REDIS_ALLOW);
	config_unref(cfg);

	/* The password may come from the environment, like sticky_key. */
	assert_int_equal(setenv("SLUICE_TEST_REDIS_PASSWORD", "from-env", 1), 0);
	cfg = load_ok(BASE "redis { password = \"${SLUICE_TEST_REDIS_PASSWORD}\" }\n");
	assert_int_equal(cfg->redis.password_len, 8);
	assert_memory_equal(cfg->redis.password, "from-env", 8);
	config_unref(cfg);
	assert_int_equal(unsetenv("SLUICE_TEST_REDIS_PASSWORD"), 0);

	run_cases(errors, sizeof(errors) / sizeof(errors[0]));
}

/* Every balancer and every kind of hash key loads. */
static void
test_balance_options(void **state)
{
	static const struct {
		const char *balance;
		bool keyed;
	} balancers[] = {
		{ "roundrobin", false }, { "leastconn", false }, { "hash", true }, { "\"random2\"", false },
	};
	static const struct {
		const char *text;
		enum config_hash_key kind;
		const char *name;
	} keys[] = {
		{ "client", CONFIG_HASH_CLIENT, NULL },
		{ "\"header:X-User-Id\"", CONFIG_HASH_HEADER, "X-User-Id" },
		{ "\"cookie:__Host-s!\"", CONFIG_HASH_COOKIE, "__Host-s!" },
		{ "\"query:user%5Bid%5D\"", CONFIG_HASH_QUERY, "user%5Bid%5D" },
		{ "\"query:sid\"", CONFIG_HASH_QUERY, "sid" },
	};
	char text[1024];
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(balancers) / sizeof(balancers[0]); i++) {
		const char *b = balancers[i].balance;

		snprintf(text, sizeof(text), BASE "pool \"q\" { balance = %s "
			"server \"s\" { address = \"1.1.1.1:1\" } }\n", b);
		cfg = load_ok(text);
		assert_string_equal(cfg->pools[1].balance, b[0] == '"' ? "random2" : b);
		assert_int_equal(cfg->pools[1].keyed, balancers[i].keyed);
		/* Each pool has its own balancer. */
		assert_string_equal(cfg->pools[0].balance, "roundrobin");
		config_unref(cfg);
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(text, sizeof(text), BASE "pool \"q\" { balance = hash hash_key = %s "
			"server \"s\" { address = \"1.1.1.1:1\" } }\n", keys[i].text);
		cfg = load_ok(text);
		assert_int_equal(cfg->pools[1].hash_key, keys[i].kind);
		if (keys[i].name == NULL)
			assert_null(cfg->pools[1].hash_key_name);
		else
			assert_string_equal(cfg->pools[1].hash_key_name, keys[i].name);
		config_unref(cfg);
	}
}

/* A pool's health, passive and slow_start directives: values, defaults, errors. */
static void
test_health_options(void **state)
{
	static const struct error_case errors[] = {
		{ BASE "pool \"q\" {\n  health {\n    type = icmp\n  }\n}\n",
		  ":7: pool \"q\": health: invalid type \"icmp\" (expected http, socketio or tcp)" },
		{ BASE "pool \"q\" {\n  health { status = \"300-200\" }\n}\n",
		  ":6: pool \"q\": health: invalid status \"300-200\" (expected a status such as 200, "
		  "or a range such as 200-399, within 100..599)" },
		{ BASE "pool \"q\" {\n  health { status = 99 }\n}\n",
		  ":6: pool \"q\": health: invalid status \"99\" (expected a status such as 200, "
		  "or a range such as 200-399, within 100..599)" },
		{ BASE "pool \"q\" {\n  health { interval = 50ms }\n}\n",
		  ":6: pool \"q\": health: invalid interval \"50ms\" (must be in 100ms..1h)" },
		{ BASE "pool \"q\" {\n  health { rise = 0 }\n}\n",
		  ":6: pool \"q\": health: invalid rise \"0\" (must be in 1..100)" },
		{ BASE "pool \"q\" {\n  health { jitter = 60% }\n}\n",
		  ":6: pool \"q\": health: invalid jitter \"60%\" (must be in 0%..50%)" },
		{ BASE "pool \"q\" {\n  health { jitter = \"5 %\" }\n}\n",
		  ":6: pool \"q\": health: invalid jitter \"5 %\" (expected a percentage such as 50%)" },
		{ BASE "pool \"q\" {\n  health {\n    interval = 1s\n    timeout = 2s\n  }\n}\n",
		  ":8: pool \"q\": health: timeout (2s) is longer than interval (1s)" },
		{ BASE "pool \"q\" {\n  health {\n    interval = 500ms\n  }\n}\n",
		  ":7: pool \"q\": health: timeout (1s) is longer than interval (500ms)" },
		{ BASE "pool \"q\" {\n  health {\n    flap_hold = 10m\n  }\n}\n",
		  ":7: pool \"q\": health: flap_hold (10m) is longer than flap_hold_max (5m)" },
		{ BASE "pool \"q\" {\n  health {\n    type = tcp\n    path = \"/x\"\n  }\n}\n",
		  ":8: pool \"q\": health: path is set but type = tcp (a connect is the check)" },
		{ BASE "pool \"q\" {\n  health {\n    type = socketio\n    status = 200\n  }\n}\n",
		  ":8: pool \"q\": health: status is set but type = socketio (which sends GET and "
		  "expects 200 and an Engine.IO open packet)" },
		{ BASE "pool \"q\" {\n  health {\n    path = \"healthz\"\n  }\n}\n",
		  ":7: pool \"q\": health: invalid path \"healthz\" (expected \"/\" and more, "
		  "without spaces or \"#\")" },
		{ BASE "pool \"q\" {\n  health {\n    path = \"/a b\"\n  }\n}\n",
		  ":7: pool \"q\": health: invalid path \"/a b\" (expected \"/\" and more, "
		  "without spaces or \"#\")" },
		{ BASE "pool \"q\" {\n  health {\n    method = \"GET /\"\n  }\n}\n",
		  ":7: pool \"q\": health: invalid method \"GET /\" (expected a token such as GET or HEAD)" },
		{ BASE "pool \"q\" {\n  health {\n    host = \"a/b\"\n  }\n}\n",
		  ":7: pool \"q\": health: invalid host \"a/b\" (expected a host name or HOST:PORT)" },
		{ BASE "pool \"q\" {\n  health {\n    method = HEAD\n    body = \"ok\"\n  }\n}\n",
		  ":8: pool \"q\": health: body is set but method = HEAD (an answer to HEAD has no body)" },
		{ BASE "pool \"q\" {\n  health {\n    body = \"\"\n  }\n}\n",
		  ":7: pool \"q\": health: invalid body \"\" (expected a non-empty string)" },
		{ BASE "pool \"q\" {\n  health { }\n  health { }\n}\n",
		  ":7: pool \"q\": duplicate health section (first at line 6)" },
		{ BASE "pool \"q\" {\n  passive {\n    max_ejected = 101%\n  }\n}\n",
		  ":7: pool \"q\": passive: invalid max_ejected \"101%\" (must be in 0%..100%)" },
		{ BASE "pool \"q\" {\n  passive {\n    base_ejection = 10m\n  }\n}\n",
		  ":7: pool \"q\": passive: base_ejection (10m) is longer than max_ejection (5m)" },
		{ BASE "pool \"q\" {\n  passive {\n    connect_failures = -1\n  }\n}\n",
		  ":7: pool \"q\": passive: invalid connect_failures \"-1\" (expected an integer)" },
		{ BASE "pool \"q\" {\n  slow_start = 2h\n}\n",
		  ":6: pool \"q\": invalid slow_start \"2h\" (must be in 0ms..1h)" },
	};
	struct config *cfg;
	const struct config_pool *p;

	(void)state;
	cfg = load_ok(BASE "pool \"q\" {\n"
		"  slow_start = 30s\n"
		"  health {\n"
		"    type = http method = HEAD path = \"/healthz?full=1\" host = \"api.internal:8080\"\n"
		"    status = 204 interval = 5s timeout = 2s rise = 1 fall = 5 jitter = 0%\n"
		"    flap_changes = 6 flap_window = 2m flap_hold = 30s flap_hold_max = 1h\n"
		"  }\n"
		"  passive {\n"
		"    connect_failures = 0 status_5xx = 5 base_ejection = 30s max_ejection = 10m\n"
		"    max_ejected = 25\n"
		"  }\n"
		"  server \"s\" { address = \"1.1.1.1:1\" }\n"
		"}\n");
	/* Without the sections: no checks, passive defaults, no slow start. */
	p = &cfg->pools[0];
	assert_false(p->health_on);
	assert_int_equal(p->slow_start_ms, 0);
	assert_int_equal(p->passive.connect_failures, 3);
	assert_int_equal(p->passive.status_5xx, 0);
	assert_int_equal(p->passive.base_ejection_ms, 10000);
	assert_int_equal(p->passive.max_ejection_ms, 300000);
	assert_int_equal(p->passive.max_ejected_pct, 50);
	p = &cfg->pools[1];
	assert_true(p->health_on);
	assert_int_equal(p->slow_start_ms, 30000);
	assert_int_equal(p->health.type, CONFIG_CHECK_HTTP);
	assert_string_equal(p->health.method, "HEAD");
	assert_string_equal(p->health.path, "/healthz?full=1");
	assert_string_equal(p->health.host, "api.internal:8080");
	assert_int_equal(p->health.status_min, 204);
	assert_int_equal(p->health.status_max, 204);
	assert_null(p->health.body);
	assert_int_equal(p->health.interval_ms, 5000);
	assert_int_equal(p->health.timeout_ms, 2000);
	assert_int_equal(p->health.rise, 1);
	assert_int_equal(p->health.fall, 5);
	assert_int_equal(p->health.jitter_pct, 0);
	assert_int_equal(p->health.flap_changes, 6);
	assert_int_equal(p->health.flap_window_ms, 120000);
	assert_int_equal(p->health.flap_hold_ms, 30000);
	assert_int_equal(p->health.flap_hold_max_ms, 3600000);
	assert_int_equal(p->passive.connect_failures, 0);
	assert_int_equal(p->passive.status_5xx, 5);
	assert_int_equal(p->passive.base_ejection_ms, 30000);
	assert_int_equal(p->passive.max_ejection_ms, 600000);
	assert_int_equal(p->passive.max_ejected_pct, 25);
	config_unref(cfg);

	/* body is for http checks only: socketio has its own test. */
	expect_error(BASE "pool \"sio\" {\n  health { type = socketio body = \"x\" }\n"
		"  server \"s\" { address = \"1.1.1.1:1\" }\n}\n",
		":6: pool \"sio\": health: body is set but type = socketio (which sends GET and "
		"expects 200 and an Engine.IO open packet)");
	/* Defaults of an empty section; the path follows the type. */
	cfg = load_ok(BASE "pool \"q\" {\n  health { }\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n"
		"pool \"sio\" {\n  health { type = socketio }\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n"
		"pool \"t\" {\n  health { type = tcp }\n  server \"s\" { address = \"1.1.1.1:1\" }\n}\n");
	p = &cfg->pools[1];
	assert_true(p->health_on);
	assert_int_equal(p->health.type, CONFIG_CHECK_HTTP);
	assert_string_equal(p->health.method, "GET");
	assert_string_equal(p->health.path, "/");
	assert_null(p->health.host);
	assert_int_equal(p->health.status_min, 200);
	assert_int_equal(p->health.status_max, 399);
	assert_null(p->health.body);
	assert_int_equal(p->health.interval_ms, 2000);
	assert_int_equal(p->health.timeout_ms, 1000);
	assert_int_equal(p->health.rise, 2);
	assert_int_equal(p->health.fall, 3);
	assert_int_equal(p->health.jitter_pct, 10);
	assert_int_equal(p->health.flap_changes, 4);
	assert_int_equal(p->health.flap_window_ms, 60000);
	assert_int_equal(p->health.flap_hold_ms, 10000);
	assert_int_equal(p->health.flap_hold_max_ms, 300000);
	assert_int_equal(cfg->pools[2].health.type, CONFIG_CHECK_SOCKETIO);
	assert_string_equal(cfg->pools[2].health.path, "/socket.io/");
	assert_int_equal(cfg->pools[3].health.type, CONFIG_CHECK_TCP);
	assert_false(cfg->pools[0].health_on);
	config_unref(cfg);
	run_cases(errors, sizeof(errors) / sizeof(errors[0]));
}

/* Cookie stickiness without sticky_key: one random key per process. */
static void
test_sticky_key_random(void **state)
{
	static const char zero[32];
	struct config *a, *b, *c;

	(void)state;
	a = load_ok(BASE "route \"r\" { pool = p sticky = \"cookie socketio\" }\n");
	assert_true(a->sticky_key_random);
	assert_int_equal(a->sticky_key_len, 32);
	assert_non_null(a->sticky_key);
	assert_memory_not_equal(a->sticky_key, zero, 32);
	/* A reload keeps the key, so clients keep their cookies. */
	b = load_ok(BASE "route \"x\" { path = \"/x\" pool = p }\n"
		"route \"r\" { pool = p sticky = cookie }\n");
	assert_true(b->sticky_key_random);
	assert_int_equal(b->sticky_key_len, 32);
	assert_ptr_not_equal(a->sticky_key, b->sticky_key);
	assert_memory_equal(a->sticky_key, b->sticky_key, 32);
	config_unref(a);
	config_unref(b);
	/* socketio alone needs no key; a key in the file wins. */
	c = load_ok(BASE "route \"r\" { pool = p sticky = socketio }\n");
	assert_null(c->sticky_key);
	assert_false(c->sticky_key_random);
	config_unref(c);
	c = load_ok(BASE "sticky_key = \"0123456789abcdef\"\nroute \"r\" { pool = p sticky = cookie }\n");
	assert_false(c->sticky_key_random);
	assert_int_equal(c->sticky_key_len, 16);
	assert_memory_equal(c->sticky_key, "0123456789abcdef", 16);
	config_unref(c);
}

static void
test_file_errors(void **state)
{
	char err[512], want[256];

	(void)state;
	snprintf(want, sizeof(want), "%s/missing.conf", dir);
	assert_null(config_load(want, err, sizeof(err)));
	strcat(want, ": cannot open: No such file or directory");
	assert_string_equal(err, want);

	assert_null(config_load(dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
	assert_string_equal(err, want);

	/* A short err buffer is truncated, not overrun. */
	snprintf(want, sizeof(want), "%s/missing.conf", dir);
	assert_null(config_load(want, err, 8));
	assert_int_equal(strlen(err), 7);
}

/* --------------------------------------------------------------- parsers */

static void
test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		unsigned ms;
	} good[] = {
		{ "500ms", 500 }, { "10s", 10000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "30", 30000 }, { "0", 0 }, { "0ms", 0 }, { "007s", 7000 },
		{ "4294967295ms", 4294967295u }, { "4294967s", 4294967000u },
	};
	static const char *const bad[] = {
		"", "s", "ms", "-1", "+1", "1.5s", " 10s", "10s ", "10 s", "10S", "10x",
		"10sec", "1d", "4294967296ms", "4294968s", "1194h", "99999999999999999999999",
	};
	unsigned ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 12345;
		assert_int_equal(config_parse_duration(good[i].s, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 12345;
		if (config_parse_duration(bad[i], &ms) != -1)
			fail_msg("duration \"%s\" accepted", bad[i]);
		assert_int_equal(ms, 12345);
	}
	assert_int_equal(config_parse_duration(NULL, &ms), -1);
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *s;
		size_t n;
	} good[] = {
		{ "512", 512 }, { "0", 0 }, { "16k", 16384 }, { "16K", 16384 },
		{ "1m", 1048576 }, { "1M", 1048576 }, { "2g", 2147483648u },
	};
	static const char *const bad[] = {
		"", "k", "16kb", "-1", "1.5k", " 1k", "1k ", "1 k", "1t", "0x10",
		"99999999999999999999999", "17179869184g",
	};
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = 12345;
		assert_int_equal(config_parse_size(good[i].s, &n), 0);
		assert_int_equal(n, good[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 12345;
		if (config_parse_size(bad[i], &n) != -1)
			fail_msg("size \"%s\" accepted", bad[i]);
		assert_int_equal(n, 12345);
	}
	assert_int_equal(config_parse_size(NULL, &n), -1);
}

static void
test_parse_address(void **state)
{
	static const char *const bad[] = {
		"", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:8a",
		"1.2.3.4:-1", "1.2.3.4: 80", "localhost:80", "example.com:443", "::1:80", "::1",
		"[::1]", "[::1]80", "[::1]:", "[1.2.3.4]:80", "1.2.3:80", "1.2.3.256:80",
		"*:0", "*", "[*]:80", "[::1%lo]:80", " 1.2.3.4:80", "1.2.3.4:80 ",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	assert_int_equal(config_parse_address("1.2.3.4:80", &ss, &len), 0);
	assert_ipv4(&ss, len, "1.2.3.4", 80);
	assert_int_equal(config_parse_address("127.0.0.1:65535", &ss, &len), 0);
	assert_ipv4(&ss, len, "127.0.0.1", 65535);
	assert_int_equal(config_parse_address("*:8080", &ss, &len), 0);
	assert_ipv4(&ss, len, "0.0.0.0", 8080);
	assert_int_equal(config_parse_address("[::1]:80", &ss, &len), 0);
	assert_ipv6(&ss, len, "::1", 80);
	assert_int_equal(config_parse_address("[::]:8080", &ss, &len), 0);
	assert_ipv6(&ss, len, "::", 8080);
	assert_int_equal(config_parse_address("[2001:db8::a:1]:1", &ss, &len), 0);
	assert_ipv6(&ss, len, "2001:db8::a:1", 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_address(bad[i], &ss, &len) != -1)
			fail_msg("address \"%s\" accepted", bad[i]);
	assert_int_equal(config_parse_address(NULL, &ss, &len), -1);
}

/* --------------------------------------------------------------- routing */

static const char routes_conf[] =
	BASE
	"route \"any\" { pool = p }\n"
	"route \"any_api\" { path = \"/api\" pool = p }\n"
	"route \"ex\" { host = \"example.com\" pool = p }\n"
	"route \"ex_api\" { host = \"example.com\" path = \"/api\" pool = p }\n"
	"route \"ex_v2\" { host = \"example.com\" path = \"/api/v2\" pool = p }\n"
	"route \"sfx\" { host = \"*.example.com\" pool = p }\n"
	"route \"sfx_eu\" { host = \"*.eu.example.com\" path = \"/x\" pool = p }\n"
	"route \"static\" { host = \"Static.Example.COM\" path = \"/static/\" pool = p }\n"
	"route \"v1\" { host = \"v1.test\" path = \"/v1\" pool = p }\n";

static const char *
match(const struct config *cfg, const char *host, const char *path)
{
	const struct config_route *r = config_route_match(cfg, host, host ? strlen(host) : 0,
		path, path ? strlen(path) : 0);

	return r != NULL ? r->name : "(none)";
}

static void
test_route_match(void **state)
{
	static const struct {
		const char *host, *path, *want;
	} cases[] = {
		/* exact beats suffix beats any */
		{ "example.com", "/", "ex" },
		{ "a.example.com", "/", "sfx" },
		{ "other.org", "/", "any" },
		/* longest path within the class */
		{ "example.com", "/api", "ex_api" },
		{ "example.com", "/api/x", "ex_api" },
		{ "example.com", "/api/v2", "ex_v2" },
		{ "example.com", "/api/v2/z", "ex_v2" },
		{ "example.com", "/api?q=1", "ex_api" },
		{ "example.com", "/api/v2?q", "ex_v2" },
		/* segment boundary */
		{ "example.com", "/apix", "ex" },
		{ "example.com", "/api/v2x", "ex_api" },
		{ "other.org", "/apiary", "any" },
		{ "other.org", "/api/", "any_api" },
		{ "static.example.com", "/static/a.css", "static" },
		{ "static.example.com", "/static/", "static" },
		{ "static.example.com", "/static", "sfx" },
		{ "static.example.com", "/staticx", "sfx" },
		/* longest suffix, then shorter ones, then any */
		{ "a.eu.example.com", "/x/y", "sfx_eu" },
		{ "a.eu.example.com", "/z", "sfx" },
		{ "eu.example.com", "/x", "sfx" },
		{ "example.com.evil", "/", "any" },
		{ "xexample.com", "/", "any" },
		/* an exact class without a matching path falls back to "*" */
		{ "v1.test", "/v1/a", "v1" },
		{ "v1.test", "/v2", "any" },
		{ "v1.test", "/api", "any_api" },
		/* port, case, trailing dot, IPv6 literal, no host */
		{ "EXAMPLE.com:8080", "/api/x", "ex_api" },
		{ "A.Example.COM:443", "/", "sfx" },
		{ "example.com.", "/", "ex" },
		{ "example.com.:80", "/", "ex" },
		{ "[::1]:8080", "/api", "any_api" },
		{ "[::1]", "/", "any" },
		{ NULL, "/api", "any_api" },
		{ "", "/", "any" },
		{ ":80", "/", "any" },
		/* "/" matches every path, even "*" and none */
		{ "example.com", "*", "ex" },
		{ "example.com", "", "ex" },
		{ "example.com", NULL, "ex" },
	};
	struct config *cfg;
	char longhost[400];
	const char *got;

	(void)state;
	cfg = load_ok(routes_conf);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = match(cfg, cases[i].host, cases[i].path);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("host %s path %s: got %s, want %s", cases[i].host ? cases[i].host : "NULL",
				cases[i].path ? cases[i].path : "NULL", got, cases[i].want);
	}
	/* Lengths are honoured: nothing past host_len or path_len is read. */
	assert_string_equal(config_route_match(cfg, "example.com:80garbage", 11, "/api/v2", 4)->name,
		"ex_api");
	assert_string_equal(config_route_match(cfg, "example.comm", 11, "/apix", 4)->name, "ex_api");
	/* An overlong host matches only "*" routes. */
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	memcpy(longhost + sizeof(longhost) - 1 - strlen(".example.com"), ".example.com", strlen(".example.com"));
	assert_string_equal(match(cfg, longhost, "/"), "any");
	config_unref(cfg);

	/* Without a "*" route, unmatched requests get NULL. */
	cfg = load_ok(BASE
		"route \"ex\" { host = \"example.com\" path = \"/a\" pool = p }\n"
		"route \"sfx\" { host = \"*.example.com\" pool = p }\n");
	assert_string_equal(match(cfg, "example.com", "/a/b"), "ex");
	assert_string_equal(match(cfg, "example.com", "/b"), "(none)");
	assert_string_equal(match(cfg, "www.example.com", "/b"), "sfx");
	assert_string_equal(match(cfg, "other.org", "/a"), "(none)");
	assert_string_equal(match(cfg, NULL, "/a"), "(none)");
	config_unref(cfg);
}

/* -------------------------------------------------------------- refcount */

/* ------------------------------------------------------------------- TLS */

/* text with every "@" replaced by the TLS fixture directory. */
static char *
with_dir(const char *text)
{
	size_t n = strlen(text) + 1;
	char *out;

	for (const char *p = text; *p; p++)
		n += *p == '@' ? strlen(tls_dir) : 0;
	out = malloc(n);
	assert_non_null(out);
	out[0] = '\0';
	for (const char *p = text; *p; p++) {
		if (*p == '@')
			strcat(out, tls_dir);
		else
			strncat(out, p, 1);
	}
	return out;
}

static struct config *
load_tls_ok(const char *text)
{
	char *t = with_dir(text);
	struct config *cfg = load_ok(t);

	free(t);
	return cfg;
}

static void
expect_tls_error(const char *text, const char *want)
{
	char *t = with_dir(text), *w = with_dir(want);

	expect_error(t, w);
	free(t);
	free(w);
}

static void
test_tls_load(void **state)
{
	const struct config_listener *l;
	const struct config_listener_tls *t;
	const struct config_pool *p;
	struct config *cfg;

	(void)state;
	cfg = load_tls_ok(
		"listener \"https\" {\n"
		"  address = \"127.0.0.1:8443\"\n"
		"  tls {\n"
		"    certificate \"rsa\" { chain = \"@/rsa.pem\" key = \"@/rsa.key\" }\n"
		"    certificate \"ec\" { chain = \"@/ec.pem\" }\n"
		"    min_version = TLSv1.3\n"
		"    max_version = tls1.3\n"
		"    ciphers = \"ECDHE+AESGCM\"\n"
		"    ciphersuites = \"TLS_AES_128_GCM_SHA256\"\n"
		"    session_cache = 0\n"
		"    session_timeout = 1d\n"
		"    tickets = yes\n"
		"    ticket_rotate = 90m\n"
		"    ticket_key_file = \"@/tickets.key\"\n"
		"    hsts = 365d\n"
		"  }\n"
		"}\n"
		"listener \"http\" { address = \"127.0.0.1:8080\" redirect_https = 8443 }\n"
		"listener \"http2\" { address = \"127.0.0.1:8081\" redirect_https = on }\n"
		"pool \"p\" {\n"
		"  tls = on\n"
		"  tls_verify = off\n"
		"  tls_ca = \"@/ca.pem\"\n"
		"  tls_server_name = \"API.Internal\"\n"
		"  tls_cert = \"@/ec.pem\"\n"
		"  tls_key = \"@/ec.key\"\n"
		"  server \"a\" { address = \"127.0.0.1:3001\" tls_server_name = \"A.api.internal\" }\n"
		"  server \"b\" { address = \"127.0.0.1:3002\" }\n"
		"}\n"
		"pool \"plain\" { server \"a\" { address = \"127.0.0.1:3003\" } }\n");
	l = &cfg->listeners[0];
	t = &l->tls_conf;
	assert_true(l->tls_enabled);
	assert_non_null(l->tls);
	assert_int_equal(tls_server_hsts(l->tls), 365 * 86400);
	assert_int_equal(l->redirect_https, 0);
	assert_int_equal(t->ncerts, 2);
	assert_string_equal(t->certs[0].name, "rsa");
	assert_non_null(strstr(t->certs[0].chain, "/rsa.pem"));
	assert_non_null(strstr(t->certs[0].key, "/rsa.key"));
	assert_string_equal(t->certs[1].name, "ec");
	assert_null(t->certs[1].key);
	assert_int_equal(t->min_version, CONFIG_TLS_1_3);
	assert_int_equal(t->max_version, CONFIG_TLS_1_3);
	assert_string_equal(t->ciphers, "ECDHE+AESGCM");
	assert_string_equal(t->ciphersuites, "TLS_AES_128_GCM_SHA256");
	assert_int_equal(t->session_cache, 0);
	assert_int_equal(t->session_timeout_s, 86400);
	assert_true(t->tickets);
	assert_int_equal(t->ticket_rotate_s, 5400);
	assert_non_null(strstr(t->ticket_key_file, "/tickets.key"));
	assert_int_equal(t->hsts_s, 365 * 86400);
	assert_false(cfg->listeners[1].tls_enabled);
	assert_null(cfg->listeners[1].tls);
	assert_int_equal(cfg->listeners[1].redirect_https, 8443);
	assert_int_equal(cfg->listeners[2].redirect_https, 443);

	p = &cfg->pools[0];
	assert_true(p->tls_on);
	assert_false(p->tls_verify);
	assert_non_null(p->tls);
	assert_non_null(strstr(p->tls_ca, "/ca.pem"));
	assert_string_equal(p->tls_server_name, "api.internal");
	assert_string_equal(p->servers[0].tls_server_name, "a.api.internal");
	assert_null(p->servers[1].tls_server_name);
	assert_non_null(strstr(p->tls_cert, "/ec.pem"));
	assert_non_null(strstr(p->tls_key, "/ec.key"));
	assert_false(cfg->pools[1].tls_on);
	assert_null(cfg->pools[1].tls);
	config_unref(cfg);

	/* Defaults. */
	cfg = load_tls_ok("listener \"s\" { address = \"127.0.0.1:8443\"\n"
		"  tls { certificate \"c\" { chain = \"@/rsa.pem\" key = \"@/rsa.key\" } } }\n"
		"pool \"p\" { tls = on server \"a\" { address = \"127.0.0.1:3001\" } }\n");
	l = &cfg->listeners[0];
	t = &l->tls_conf;
	assert_true(l->tls_enabled);
	assert_int_equal(l->redirect_https, 0);
	assert_int_equal(t->min_version, CONFIG_TLS_1_2);
	assert_int_equal(t->max_version, CONFIG_TLS_1_3);
	assert_string_equal(t->ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	assert_string_equal(t->ciphersuites,
		"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256");
	assert_int_equal(t->session_cache, 20000);
	assert_int_equal(t->session_timeout_s, 300);
	assert_true(t->tickets);
	assert_int_equal(t->ticket_rotate_s, 3600);
	assert_null(t->ticket_key_file);
	assert_int_equal(t->hsts_s, 0);
	p = &cfg->pools[0];
	assert_true(p->tls_on);
	assert_true(p->tls_verify);
	assert_null(p->tls_ca);
	assert_null(p->tls_server_name);
	assert_null(p->tls_cert);
	assert_null(p->tls_key);
	assert_non_null(p->tls);
	config_unref(cfg);
}

/* A listener whose tls section starts on line 2; errors appended after it. */
#define TLS_HEAD \
	"pool \"p\" { server \"a\" { address = \"127.0.0.1:3001\" } }\n" \
	"listener \"s\" {\n" \
	"  address = \"127.0.0.1:8443\"\n" \
	"  tls {\n" \
	"    certificate \"c\" {\n"
#define TLS_CERT_OK \
	"      chain = \"@/rsa.pem\"\n" \
	"      key = \"@/rsa.key\"\n" \
	"    }\n"
#define TLS_TAIL "  }\n}\n"

static const struct error_case tls_errors[] = {
	/* Values. */
	{ TLS_HEAD TLS_CERT_OK "    min_version = TLS1.1\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid min_version \"TLS1.1\" (expected TLS1.2 or TLS1.3)" },
	{ TLS_HEAD TLS_CERT_OK "    min_version = TLS1.3\n    max_version = TLS1.2\n" TLS_TAIL,
	  ":10: listener \"s\": tls: min_version (TLS1.3) is above max_version (TLS1.2)" },
	{ TLS_HEAD TLS_CERT_OK "    tickets = maybe\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid tickets \"maybe\" (expected on or off)" },
	{ TLS_HEAD TLS_CERT_OK "    session_timeout = 8d\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid session_timeout \"8d\" (must be in 1s..7d)" },
	{ TLS_HEAD TLS_CERT_OK "    ticket_rotate = 30s\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid ticket_rotate \"30s\" (must be in 1m..7d)" },
	{ TLS_HEAD TLS_CERT_OK "    hsts = 500ms\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid hsts \"500ms\" (expected a duration such as 30s, 5m, 1h or 7d)" },
	{ TLS_HEAD TLS_CERT_OK "    session_cache = -1\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid session_cache \"-1\" (expected an integer)" },
	{ TLS_HEAD TLS_CERT_OK "    ciphers = \"\"\n" TLS_TAIL,
	  ":9: listener \"s\": tls: invalid ciphers \"\" (expected a non-empty string)" },
	{ TLS_HEAD "      chain = \"\"\n    }\n" TLS_TAIL,
	  ":6: listener \"s\": tls: certificate \"c\": invalid chain \"\" (expected a file path)" },
	/* Structure. */
	{ TLS_HEAD "      key = \"@/rsa.key\"\n    }\n" TLS_TAIL,
	  ":5: listener \"s\": tls: certificate \"c\": chain is required" },
	{ "pool \"p\" { server \"a\" { address = \"127.0.0.1:3001\" } }\n"
	  "listener \"s\" {\n  address = \"127.0.0.1:8443\"\n  tls {\n    hsts = 1h\n  }\n}\n",
	  ":4: listener \"s\": tls: no certificate defined (at least 1 required)" },
	{ TLS_HEAD TLS_CERT_OK "    certificate \"c\" { chain = \"@/ec.pem\" }\n" TLS_TAIL,
	  ":9: listener \"s\": tls: duplicate certificate \"c\" (first defined at line 5)" },
	{ TLS_HEAD TLS_CERT_OK "    tickets = off\n    ticket_key_file = \"@/tickets.key\"\n" TLS_TAIL,
	  ":10: listener \"s\": tls: ticket_key_file is set but tickets = off" },
	{ TLS_HEAD TLS_CERT_OK TLS_TAIL "listener \"s2\" {\n  address = \"127.0.0.1:8444\"\n"
	  "  redirect_https = on\n  tls { certificate \"c\" { chain = \"@/rsa.pem\" key = \"@/rsa.key\" } }\n}\n",
	  ":13: listener \"s2\": redirect_https is for a plain listener, not one with tls" },
	{ "pool \"p\" { server \"a\" { address = \"127.0.0.1:3001\" } }\n"
	  "listener \"h\" { address = \"127.0.0.1:80\" redirect_https = 70000 }\n",
	  ":2: listener \"h\": invalid redirect_https \"70000\" (expected on, off or the https port)" },
	{ "pool \"p\" { server \"a\" { address = \"127.0.0.1:3001\" } }\n"
	  "listener \"h\" { address = \"127.0.0.1:80\" redirect_https = yes }\n",
	  ":2: listener \"h\": invalid redirect_https \"yes\" (expected on, off or the https port)" },
	/* Files, reported at the line of the directive that names them. */
	{ TLS_HEAD "      chain = \"@/rsa.pem\"\n      key = \"@/ec.key\"\n    }\n" TLS_TAIL,
	  ":7: listener \"s\": tls: certificate \"c\": key @/ec.key does not match certificate @/rsa.pem" },
	{ TLS_HEAD "      chain = \"@/missing.pem\"\n      key = \"@/rsa.key\"\n    }\n" TLS_TAIL,
	  ":6: listener \"s\": tls: certificate \"c\": cannot open certificate @/missing.pem: "
	  "No such file or directory" },
	{ TLS_HEAD "      chain = \"@/tickets.key\"\n    }\n" TLS_TAIL,
	  ":6: listener \"s\": tls: certificate \"c\": no PEM certificate in @/tickets.key" },
	/* No key directive: the message points at the certificate. */
	{ TLS_HEAD "      chain = \"@/rsa.pem\"\n    }\n" TLS_TAIL,
	  ":6: listener \"s\": tls: certificate \"c\": no PEM private key in @/rsa.pem" },
	{ TLS_HEAD TLS_CERT_OK "\n    ciphers = \"NOPE\"\n" TLS_TAIL,
	  ":10: listener \"s\": tls: ciphers \"NOPE\": no cipher that OpenSSL knows" },
	{ TLS_HEAD TLS_CERT_OK "    ticket_key_file = \"@/bad-tickets.key\"\n" TLS_TAIL,
	  ":9: listener \"s\": tls: ticket_key_file @/bad-tickets.key:3: invalid base64" },
	/* Pools. */
	{ BASE "pool \"q\" {\n  tls_ca = \"@/ca.pem\"\n  server \"a\" { address = \"127.0.0.1:1\" }\n}\n",
	  ":6: pool \"q\": tls_ca is set but tls = off" },
	{ BASE "pool \"q\" {\n  tls = off\n  tls_verify = on\n  server \"a\" { address = \"127.0.0.1:1\" }\n}\n",
	  ":7: pool \"q\": tls_verify is set but tls = off" },
	{ BASE "pool \"q\" {\n  server \"a\" {\n    address = \"127.0.0.1:1\"\n"
	  "    tls_server_name = \"a.internal\"\n  }\n}\n",
	  ":8: pool \"q\": server \"a\": tls_server_name is set but the pool has tls = off" },
	{ BASE "pool \"q\" {\n  tls = on\n  tls_key = \"@/ec.key\"\n  server \"a\" { address = \"127.0.0.1:1\" }\n}\n",
	  ":7: pool \"q\": tls_key is set without tls_cert" },
	{ BASE "pool \"q\" {\n  tls = on\n  tls_server_name = \"10.0.0.1\"\n}\n",
	  ":7: pool \"q\": invalid tls_server_name \"10.0.0.1\" (an IP address is not a server name; "
	  "without one, the server's IP address is verified)" },
	{ BASE "pool \"q\" {\n  tls = on\n  tls_server_name = \"a b\"\n}\n",
	  ":7: pool \"q\": invalid tls_server_name \"a b\" (expected a host name)" },
	{ BASE "pool \"q\" {\n  tls = 1\n}\n",
	  ":6: pool \"q\": invalid tls \"1\" (expected on or off)" },
	{ BASE "pool \"q\" {\n  tls = on\n\n  tls_ca = \"@/missing.pem\"\n"
	  "  server \"a\" { address = \"127.0.0.1:1\" }\n}\n",
	  ":8: pool \"q\": cannot open tls_ca @/missing.pem: No such file or directory" },
	{ BASE "pool \"q\" {\n  tls = on\n  tls_cert = \"@/rsa.pem\"\n  tls_key = \"@/ec.key\"\n"
	  "  server \"a\" { address = \"127.0.0.1:1\" }\n}\n",
	  ":8: pool \"q\": key @/ec.key does not match certificate @/rsa.pem" },
};

static void
test_tls_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tls_errors) / sizeof(tls_errors[0]); i++)
		expect_tls_error(tls_errors[i].text, tls_errors[i].want);
}

static int freed;
static struct config *freed_cfg;

static void
on_free(struct config *cfg)
{
	freed++;
	freed_cfg = cfg;
	/* Everything is still there when the hook runs. */
	assert_string_equal(cfg->pools[0].name, "p");
}

static void
test_refcount(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok(BASE);
	cfg->on_free = on_free;
	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(atomic_load(&cfg->refcnt), 2);
	config_unref(cfg);
	assert_int_equal(freed, 0);
	assert_int_equal(atomic_load(&cfg->refcnt), 1);
	config_unref(cfg);
	assert_int_equal(freed, 1);
	assert_ptr_equal(freed_cfg, cfg);
	config_unref(NULL);
}

/* ------------------------------------------------------------ rate limits */

static void
test_ratelimit_options(void **state)
{
	static const struct error_case errors[] = {
		{ BASE "ratelimit \"a\" {\n  per = 1m\n}\n",
		  ":5: ratelimit \"a\": rate is required" },
		{ BASE "ratelimit \"a\" {\n  rate = 0\n}\n",
		  ":6: ratelimit \"a\": invalid rate \"0\" (must be in 1..1000000)" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  per = 500ms\n}\n",
		  ":7: ratelimit \"a\": invalid per \"500ms\" (expected a duration such as 30s, 5m, 1h or 7d)" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  key = \"query:x\"\n}\n",
		  ":7: ratelimit \"a\": invalid key \"query:x\" (expected client, route, "
		  "\"header:NAME\" or \"cookie:NAME\")" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  kind = frames\n}\n",
		  ":7: ratelimit \"a\": invalid kind \"frames\" (expected requests, upgrades, "
		  "messages or connections)" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  on_exceed = drop\n}\n",
		  ":7: ratelimit \"a\": on_exceed is for kind = messages" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  kind = connections\n  burst = 2\n}\n",
		  ":8: ratelimit \"a\": per and burst do not apply to kind = connections "
		  "(rate is the most connections at once)" },
		{ BASE "ratelimit \"a\" {\n  rate = 1\n  kind = messages\n  headers = on\n}\n",
		  ":8: ratelimit \"a\": headers is for kind = requests or upgrades" },
		{ BASE "route \"r\" {\n  pool = \"p\"\n  ratelimit = \"nope\"\n}\n",
		  ":7: route \"r\": unknown ratelimit \"nope\"" },
		{ BASE "ratelimit \"a\" { rate = 1 }\nroute \"r\" {\n  pool = \"p\"\n"
		  "  ratelimit = \"a, a\"\n}\n",
		  ":8: route \"r\": ratelimit \"a\" listed twice" },
		{ BASE "route \"r\" {\n  pool = \"p\"\n  ratelimit = \"a/b\"\n}\n",
		  ":7: route \"r\": invalid ratelimit \"a/b\" (\"a/b\" is not a name (1 to 64 letters, digits, "
		  "\"_\", \"-\" or \".\"))" },
		{ "trusted_proxies = \"10.0.0.0/33\"\n" BASE,
		  ":1: invalid trusted_proxies \"10.0.0.0/33\" (\"10.0.0.0/33\" is not an address "
		  "or ADDRESS/BITS)" },
		{ "trusted_proxies = \"localhost\"\n" BASE,
		  ":1: invalid trusted_proxies \"localhost\" (\"localhost\" is not an address "
		  "or ADDRESS/BITS)" },
	};
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		expect_error(errors[i].text, errors[i].want);
	cfg = load_ok("trusted_proxies = \"10.1.2.3/8, ::1 192.168.0.0/16\"\n" BASE
		"ratelimit \"per-ip\" { rate = 100 per = 1m burst = 20 headers = on }\n"
		"ratelimit \"per-key\" { rate = 5 key = \"header:X-Api-Key\" }\n"
		"ratelimit \"msgs\" { rate = 3 per = 2s kind = messages on_exceed = drop }\n"
		"ratelimit \"conns\" { rate = 2 kind = connections key = route }\n"
		"route \"r\" { pool = \"p\" ratelimit = \"per-ip,per-key msgs  conns\" }\n"
		"route \"z\" { path = \"/z\" pool = \"p\" }\n");
	assert_int_equal(cfg->ntrusted, 3);
	assert_int_equal(cfg->trusted[0].family, AF_INET);
	assert_int_equal(cfg->trusted[0].bits, 8);
	assert_int_equal(cfg->trusted[0].addr[1], 0);		/* host bits cleared */
	assert_int_equal(cfg->trusted[1].family, AF_INET6);
	assert_int_equal(cfg->trusted[1].bits, 128);
	assert_int_equal(cfg->nratelimits, 4);
	assert_string_equal(cfg->ratelimits[0].name, "per-ip");
	assert_int_equal(cfg->ratelimits[0].rate, 100);
	assert_int_equal(cfg->ratelimits[0].per_s, 60);
	assert_int_equal(cfg->ratelimits[0].t_us, 600000);
	assert_int_equal(cfg->ratelimits[0].tau_us, 20 * 600000);
	assert_true(cfg->ratelimits[0].headers);
	assert_int_equal(cfg->ratelimits[0].key, RL_KEY_CLIENT);
	assert_int_equal(cfg->ratelimits[1].key, RL_KEY_HEADER);
	assert_string_equal(cfg->ratelimits[1].key_name, "X-Api-Key");
	assert_int_equal(cfg->ratelimits[1].per_s, 1);
	assert_int_equal(cfg->ratelimits[1].burst, 0);
	assert_int_equal(cfg->ratelimits[2].kind, RL_KIND_MESSAGES);
	assert_int_equal(cfg->ratelimits[2].on_exceed, RL_EXCEED_DROP);
	assert_int_equal(cfg->ratelimits[3].kind, RL_KIND_CONNECTIONS);
	assert_int_equal(cfg->ratelimits[3].key, RL_KEY_ROUTE);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct config_route *r = &cfg->routes[i];

		if (strcmp(r->name, "z") == 0) {
			assert_int_equal(r->nrl, 0);
			continue;
		}
		assert_int_equal(r->nrl, 4);
		assert_ptr_equal(r->rl[0], &cfg->ratelimits[0]);
		assert_ptr_equal(r->rl[3], &cfg->ratelimits[3]);
		assert_int_equal(r->rl_kinds, RL_KINDS_BIT(RL_KIND_REQUESTS) |
			RL_KINDS_BIT(RL_KIND_MESSAGES) | RL_KINDS_BIT(RL_KIND_CONNECTIONS));
	}
	config_unref(cfg);
}

/* ---------------------------------------------- sluice.conf and the docs */

static char *
read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/*
 * The source tree: $SLUICE_SRCDIR (make check), $srcdir, or where this file
 * was compiled from.
 */
static char *
read_source(const char *rel)
{
	const char *env[] = { getenv("SLUICE_SRCDIR"), getenv("srcdir") };
	char path[512], here[512], *slash, *text;

	for (size_t i = 0; i < 2; i++) {
		if (env[i] == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", env[i], rel);
		if ((text = read_all(path)) != NULL)
			return text;
	}
	snprintf(here, sizeof(here), "%s", __FILE__);
	slash = strstr(here, "tests/unit/test_config.c");
	if (slash != NULL) {
		*slash = '\0';
		snprintf(path, sizeof(path), "%s%s", here, rel);
		if ((text = read_all(path)) != NULL)
			return text;
	}
	return read_all(rel);
}

struct ref_check {
	char *conf;
	char *docs;
	int count;
};

static void
check_directive(const struct config_directive *d, void *arg)
{
	struct ref_check *rc = arg;
	char want[256];

	rc->count++;
	if (strstr(rc->conf, d->help) == NULL)
		fail_msg("conf/sluice.conf lacks the help of %s.%s: \"%s\"", d->section, d->name, d->help);
	if (strstr(rc->docs, d->help) == NULL)
		fail_msg("docs/configuration.md lacks the help of %s.%s: \"%s\"", d->section, d->name, d->help);
	snprintf(want, sizeof(want), "`%s", d->name);
	if (strstr(rc->docs, want) == NULL)
		fail_msg("docs/configuration.md lacks %s", want);
	if (d->def != NULL) {
		/* sluice.conf shows the default, set or commented out. */
		char bare[128], quoted[128];

		snprintf(bare, sizeof(bare), "%s = %s ", d->name, d->def);
		snprintf(quoted, sizeof(quoted), "%s = \"%s\" ", d->name, d->def);
		if (strstr(rc->conf, bare) == NULL && strstr(rc->conf, quoted) == NULL)
			fail_msg("conf/sluice.conf does not show %s's default %s", d->name, d->def);
	}
}

static void
test_reference_files(void **state)
{
	struct ref_check rc = { 0 };
	char *p, *q;

	(void)state;
	rc.conf = read_source("conf/sluice.conf");
	rc.docs = read_source("docs/configuration.md");
	if (rc.conf == NULL || rc.docs == NULL) {
		free(rc.conf);
		free(rc.docs);
		fail_msg("conf/sluice.conf or docs/configuration.md not found; set SLUICE_SRCDIR");
	}
	/* Markdown escapes such as \* are not part of the text. */
	for (p = q = rc.docs; *p; p++) {
		if (*p == '\\' && ispunct((unsigned char)p[1]))
			p++;
		*q++ = *p;
	}
	*q = '\0';
	config_foreach_directive(check_directive, &rc);
	/* DNS discovery has 7: resolvers, and resolve_interval, max_addresses and
	 * resolve_family in pools and in servers. */
	/* Health has 23: the health section and its 15, the passive section
	 * and its 5, and slow_start. */
	/* Redis has 8: the redis section and its 7. */
	/* PROXY protocol has 1: proxy_protocol in listeners. */
	/* Rate limits have 10: the ratelimit section and its 7, a route's
	 * ratelimit and trusted_proxies. */
	assert_int_equal(rc.count, 106);
	free(rc.conf);
	free(rc.docs);
}

/* conf/sluice.conf is the quickstart's demo config and passes sluice -t. */
static void
test_sluice_conf(void **state)
{
	char *text = read_source("conf/sluice.conf");
	struct config *cfg;

	(void)state;
	assert_non_null(text);
	cfg = load_ok(text);
	free(text);
	assert_int_equal(cfg->nlisteners, 1);
	assert_string_equal(cfg->listeners[0].address, "0.0.0.0:8080");
	assert_int_equal(cfg->npools, 1);
	assert_string_equal(cfg->pools[0].name, "demo");
	assert_int_equal(cfg->pools[0].nservers, 3);
	assert_string_equal(cfg->pools[0].servers[0].address, "127.0.0.1:3001");
	assert_string_equal(cfg->pools[0].servers[1].address, "127.0.0.1:3002");
	assert_string_equal(cfg->pools[0].servers[2].address, "127.0.0.1:3003");
	assert_int_equal(cfg->nroutes, 1);
	assert_string_equal(cfg->routes[0].name, "all");
	assert_ptr_equal(cfg->routes[0].pool, &cfg->pools[0]);
	/* The demo is a Socket.io chat: sid stickiness, so no key needed. */
	assert_int_equal(cfg->routes[0].sticky, CONFIG_STICKY_SOCKETIO);
	assert_string_equal(cfg->routes[0].sticky_cookie, "sluice");
	assert_null(cfg->sticky_key);
	config_unref(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_full),
		cmocka_unit_test(test_load_defaults),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_sticky_options),
		cmocka_unit_test(test_balance_options),
		cmocka_unit_test(test_redis_options),
		cmocka_unit_test(test_sticky_key_random),
		cmocka_unit_test(test_health_options),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_route_match),
		cmocka_unit_test(test_tls_load),
		cmocka_unit_test(test_tls_errors),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_ratelimit_options),
		cmocka_unit_test(test_reference_files),
		cmocka_unit_test(test_sluice_conf),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
