/*
 * DNS discovery tests: the slot assignment (stable slots, returning
 * addresses, reuse order, too many addresses, empty answers); the loading
 * of servers that name a host (slots, inherited settings, errors); and
 * dns.c against libevent's DNS server on loopback (answers that change,
 * NXDOMAIN, SERVFAIL, a reload that carries the slots over).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "pool.h"
#include "server.h"

/* ------------------------------------------------------------- helpers */

static struct dns_addr
v4(const char *text)
{
	struct dns_addr a = { .family = AF_INET };

	assert_int_equal(inet_pton(AF_INET, text, a.bytes), 1);
	return a;
}

static struct dns_addr
v6(const char *text)
{
	struct dns_addr a = { .family = AF_INET6 };

	assert_int_equal(inet_pton(AF_INET6, text, a.bytes), 1);
	return a;
}

static bool
same(const struct dns_addr *a, const char *text)
{
	struct dns_addr b = strchr(text, ':') ? v6(text) : v4(text);

	return a->family == b.family && memcmp(a->bytes, b.bytes, 16) == 0;
}

/* Apply an answer of IPv4 addresses; returns the extras. */
static size_t
answer(struct dns_slot *slots, size_t n, enum dns_change *ch, const char *const *ips, size_t nips)
{
	struct dns_addr addrs[16];

	assert_true(nips <= 16);
	for (size_t i = 0; i < nips; i++)
		addrs[i] = v4(ips[i]);
	return dns_assign(slots, n, addrs, nips, ch);
}

#define ANSWER(slots, ch, ...) \
	answer(slots, sizeof(slots) / sizeof(slots[0]), ch, (const char *const[]){ __VA_ARGS__ }, \
		sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

/* --------------------------------------------------------- assignment */

static void
test_first_answer_fills_in_order(void **state)
{
	struct dns_slot slots[4] = { 0 };
	enum dns_change ch[4];

	(void)state;
	assert_int_equal(ANSWER(slots, ch, "10.0.0.1", "10.0.0.2", "10.0.0.3"), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ch[i], DNS_ADD);
		assert_true(slots[i].present);
		assert_true(slots[i].used);
	}
	assert_true(same(&slots[0].addr, "10.0.0.1"));
	assert_true(same(&slots[2].addr, "10.0.0.3"));
	assert_int_equal(ch[3], DNS_SAME);
	assert_false(slots[3].present);
	assert_false(slots[3].used);
}

static void
test_same_set_any_order_changes_nothing(void **state)
{
	struct dns_slot slots[4] = { 0 };
	enum dns_change ch[4];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2", "10.0.0.3");
	assert_int_equal(ANSWER(slots, ch, "10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.1"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ch[i], DNS_SAME);
	assert_true(same(&slots[1].addr, "10.0.0.2"));
}

static void
test_gone_address_is_removed_and_kept(void **state)
{
	struct dns_slot slots[3] = { 0 };
	enum dns_change ch[3];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2", "10.0.0.3");
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.3");
	assert_int_equal(ch[0], DNS_SAME);
	assert_int_equal(ch[1], DNS_REMOVE);
	assert_int_equal(ch[2], DNS_SAME);
	assert_false(slots[1].present);
	assert_true(slots[1].used);
	assert_true(same(&slots[1].addr, "10.0.0.2"));
}

static void
test_returning_address_takes_its_slot(void **state)
{
	struct dns_slot slots[4] = { 0 };
	enum dns_change ch[4];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2", "10.0.0.3");
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.3");
	ANSWER(slots, ch, "10.0.0.2", "10.0.0.1", "10.0.0.3");
	assert_int_equal(ch[1], DNS_BACK);
	assert_true(slots[1].present);
	assert_true(same(&slots[1].addr, "10.0.0.2"));
	assert_int_equal(ch[3], DNS_SAME);
	assert_false(slots[3].used);
}

static void
test_new_address_prefers_unused_then_old_free_slot(void **state)
{
	struct dns_slot slots[3] = { 0 };
	enum dns_change ch[3];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2");
	ANSWER(slots, ch, "10.0.0.2");			/* slot 0 freed */
	ANSWER(slots, ch, "10.0.0.2", "10.0.0.9");	/* the unused slot 2 first */
	assert_int_equal(ch[2], DNS_ADD);
	assert_true(same(&slots[2].addr, "10.0.0.9"));
	assert_int_equal(ch[0], DNS_SAME);
	/* Now slot 0 is free since an earlier answer, slot 2 frees now: the
	 * newcomer takes slot 0. */
	ANSWER(slots, ch, "10.0.0.2", "10.0.0.7");
	assert_int_equal(ch[0], DNS_ADD);
	assert_true(same(&slots[0].addr, "10.0.0.7"));
	assert_int_equal(ch[2], DNS_REMOVE);
	assert_true(same(&slots[2].addr, "10.0.0.9"));
}

static void
test_slot_freed_now_is_replaced_last(void **state)
{
	struct dns_slot slots[2] = { 0 };
	enum dns_change ch[2];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2");
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.5");
	assert_int_equal(ch[0], DNS_SAME);
	assert_int_equal(ch[1], DNS_REPLACE);
	assert_true(slots[1].present);
	assert_true(same(&slots[1].addr, "10.0.0.5"));
}

static void
test_more_addresses_than_slots(void **state)
{
	struct dns_slot slots[2] = { 0 };
	enum dns_change ch[2];

	(void)state;
	assert_int_equal(ANSWER(slots, ch, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.3"), 1);
	assert_true(same(&slots[0].addr, "10.0.0.1"));
	assert_true(same(&slots[1].addr, "10.0.0.2"));
	/* The ones that have a slot keep it whatever the order. */
	assert_int_equal(ANSWER(slots, ch, "10.0.0.4", "10.0.0.3", "10.0.0.2", "10.0.0.1"), 2);
	assert_int_equal(ch[0], DNS_SAME);
	assert_int_equal(ch[1], DNS_SAME);
	/* One goes: an extra takes its slot. */
	assert_int_equal(ANSWER(slots, ch, "10.0.0.4", "10.0.0.3", "10.0.0.2"), 1);
	assert_int_equal(ch[0], DNS_REPLACE);
	assert_true(same(&slots[0].addr, "10.0.0.4"));
}

static void
test_empty_answer_removes_all(void **state)
{
	struct dns_slot slots[3] = { 0 };
	enum dns_change ch[3];

	(void)state;
	ANSWER(slots, ch, "10.0.0.1", "10.0.0.2");
	assert_int_equal(dns_assign(slots, 3, NULL, 0, ch), 0);
	assert_int_equal(ch[0], DNS_REMOVE);
	assert_int_equal(ch[1], DNS_REMOVE);
	assert_int_equal(ch[2], DNS_SAME);
	assert_false(slots[0].present || slots[1].present || slots[2].present);
	/* Again: nothing more to do. */
	assert_int_equal(dns_assign(slots, 3, NULL, 0, ch), 0);
	assert_int_equal(ch[0], DNS_SAME);
}

static void
test_families_are_distinct(void **state)
{
	struct dns_slot slots[3] = { 0 };
	enum dns_change ch[3];
	struct dns_addr addrs[3] = { v4("10.0.0.1"), v6("fd00::1"), v6("a00:1::") };

	(void)state;
	/* a00:1:: starts with the bytes of 10.0.0.1. */
	assert_int_equal(dns_assign(slots, 3, addrs, 3, ch), 0);
	assert_int_equal(ch[2], DNS_ADD);
	assert_int_equal(slots[1].addr.family, AF_INET6);
	assert_int_equal(dns_assign(slots, 3, addrs, 3, ch), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ch[i], DNS_SAME);
}

/* -------------------------------------------------------------- loading */

static char conf_path[] = "/tmp/sluice-test-dns-XXXXXX";

static struct config *
load(const char *text, char *err, size_t errlen)
{
	int fd = mkstemp(conf_path);
	struct config *cfg;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	cfg = config_load(conf_path, err, errlen);
	unlink(conf_path);
	strcpy(conf_path + strlen(conf_path) - 6, "XXXXXX");
	return cfg;
}

static struct config *
load_ok(const char *text)
{
	char err[512] = "";
	struct config *cfg = load(text, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("config rejected: %s", err);
	return cfg;
}

static void
load_err(const char *text, const char *want)
{
	char err[512] = "";
	struct config *cfg = load(text, err, sizeof(err));

	if (cfg != NULL) {
		config_unref(cfg);
		fail_msg("config accepted, wanted %s", want);
	}
	if (strstr(err, want) == NULL)
		fail_msg("got \"%s\", wanted \"%s\"", err, want);
}

#define LISTENER "listener \"l\" { address = \"127.0.0.1:80\" }\n"

static void
test_named_server_becomes_slots(void **state)
{
	struct config *cfg;
	const struct config_pool *p;

	(void)state;
	cfg = load_ok(LISTENER
		"pool \"p\" {\n"
		"  resolve_interval = 2s\n"
		"  server \"a\" { address = \"10.0.0.1:80\" weight = 3 }\n"
		"  server \"api\" { address = \"API.Example.com:3000\" weight = 2 max_addresses = 3 }\n"
		"  server \"b\" { address = \"10.0.0.2:80\" }\n"
		"  server \"v6\" { address = \"v6.example.com:81\" resolve_family = ipv6 "
		"resolve_interval = 300ms }\n"
		"}\n");
	p = &cfg->pools[0];
	assert_int_equal(p->nservers, 2 + 3 + 8);
	assert_int_equal(cfg->nservers, 13);
	assert_string_equal(p->servers[0].name, "a");
	assert_null(p->servers[0].dns_name);
	assert_int_equal(p->servers[0].dns_slot, 0);
	for (unsigned k = 1; k <= 3; k++) {
		const struct config_server *s = &p->servers[k];
		char name[16];

		snprintf(name, sizeof(name), "api-%u", k);
		assert_string_equal(s->name, name);
		assert_string_equal(s->dns_name, "api.example.com");
		assert_int_equal(s->dns_port, 3000);
		assert_int_equal(s->dns_slot, k);
		assert_int_equal(s->max_addresses, 3);
		assert_int_equal(s->weight, 2);
		assert_int_equal(s->resolve_interval_ms, 2000);
		assert_int_equal(s->resolve_family, CONFIG_FAMILY_ANY);
		assert_int_equal(s->addrlen, 0);
		assert_int_equal(s->index, k);
		assert_ptr_equal(s->pool, p);
	}
	assert_string_equal(p->servers[4].name, "b");
	assert_int_equal(p->servers[4].index, 4);
	assert_string_equal(p->servers[5].name, "v6-1");
	assert_string_equal(p->servers[12].name, "v6-8");
	assert_int_equal(p->servers[12].resolve_family, CONFIG_FAMILY_IPV6);
	assert_int_equal(p->servers[12].resolve_interval_ms, 300);
	assert_int_equal(p->servers[12].gindex, 12);
	assert_null(cfg->resolvers);

	/* Slots start absent; fixed servers present. */
	assert_int_equal(pool_attach(cfg, NULL), 0);
	assert_true(server_usable(&p->servers[0]));
	assert_false(server_usable(&p->servers[1]));
	assert_false(atomic_load(&p->servers[3].rt->present));
	assert_true(server_usable(&p->servers[4]));
	config_unref(cfg);

	/* TLS without a name: the host name is the slots' server name. */
	cfg = load_ok("resolvers = \"127.0.0.1:5353, [::1]:53 10.0.0.53\"\n" LISTENER
		"pool \"p\" { tls = on max_addresses = 2\n"
		"  server \"api\" { address = \"api.internal:443\" }\n"
		"  server \"web\" { address = \"web.internal:443\" tls_server_name = \"www.example.com\" }\n"
		"}\n"
		"pool \"q\" { tls = on tls_server_name = \"q.example.com\"\n"
		"  server \"api\" { address = \"api.internal:443\" } }\n");
	assert_string_equal(cfg->resolvers, "127.0.0.1:5353, [::1]:53 10.0.0.53");
	assert_string_equal(cfg->pools[0].servers[1].tls_server_name, "api.internal");
	assert_string_equal(cfg->pools[0].servers[3].tls_server_name, "www.example.com");
	assert_null(cfg->pools[1].servers[0].tls_server_name);
	config_unref(cfg);
}

static void
test_named_server_errors(void **state)
{
	(void)state;
	load_err(LISTENER "pool \"p\" {\n  server \"a\" { address = \"api.internal\" }\n}\n",
		":3: pool \"p\": server \"a\": invalid address \"api.internal\" "
		"(a host name needs a port, as in \"api.internal:3000\")");
	load_err(LISTENER "pool \"p\" { server \"a\" { address = \"api.internal:0\" } }\n",
		"(port must be 1..65535)");
	load_err(LISTENER "pool \"p\" { server \"a\" { address = \"1.2.3:80\" } }\n",
		"(expected IP:PORT)");
	load_err(LISTENER "pool \"p\" { server \"a\" { address = \"bad_name!:80\" } }\n",
		"invalid address");
	/* Listeners take no names. */
	load_err("listener \"l\" { address = \"localhost:80\" }\n"
		"pool \"p\" { server \"a\" { address = \"10.0.0.1:80\" } }\n",
		"(address must be a numeric IP:port)");
	load_err(LISTENER "pool \"p\" {\n  server \"a\" {\n    address = \"10.0.0.1:80\"\n"
		"    max_addresses = 2\n  }\n}\n",
		":5: pool \"p\": server \"a\": max_addresses is set but the address is not a host name");
	load_err(LISTENER "pool \"p\" {\n  server \"api\" { address = \"api.internal:80\" "
		"max_addresses = 2 }\n  server \"api-2\" { address = \"10.0.0.1:80\" }\n}\n",
		":3: pool \"p\": server \"api\": its addresses are named api-1 to api-2, "
		"and server \"api-2\" exists");
	load_err(LISTENER "pool \"p\" { server \"a123456789a123456789a123456789a123456789"
		"a123456789a123456789ab\" { address = \"x.y:80\" max_addresses = 10 } }\n",
		"name too long for the names of its addresses");
	load_err(LISTENER "pool \"p\" { max_addresses = 0 server \"a\" { address = \"x.y:80\" } }\n",
		"invalid max_addresses \"0\" (must be in 1..64)");
	load_err(LISTENER "pool \"p\" { resolve_interval = 10ms server \"a\" { address = \"x.y:80\" } }\n",
		"invalid resolve_interval \"10ms\" (must be in 100ms..1h)");
	load_err(LISTENER "pool \"p\" { resolve_family = inet server \"a\" { address = \"x.y:80\" } }\n",
		"invalid resolve_family \"inet\" (expected any, ipv4 or ipv6)");
	load_err("resolvers = \"dns.google\"\n" LISTENER
		"pool \"p\" { server \"a\" { address = \"x.y:80\" } }\n",
		":1: invalid resolvers \"dns.google\" (expected IP or IP:PORT addresses separated by spaces)");
	load_err("resolvers = \" , \"\n" LISTENER
		"pool \"p\" { server \"a\" { address = \"x.y:80\" } }\n",
		":1: invalid resolvers");
	load_err("resolvers = \"*:53\"\n" LISTENER
		"pool \"p\" { server \"a\" { address = \"x.y:80\" } }\n",
		":1: invalid resolvers");
}

/* ------------------------------------------------- against a DNS server */

/* What the test DNS server answers for every A question. */
static struct {
	struct event_base *base;
	const char *ips[8];
	size_t nips;
	int rcode;			/* 0, or DNS_ERR_NOTEXIST / DNS_ERR_SERVERFAILED */
	unsigned questions_a, questions_aaaa;
} srv;

static void
server_cb(struct evdns_server_request *req, void *arg)
{
	(void)arg;
	for (int i = 0; i < req->nquestions; i++) {
		const struct evdns_server_question *q = req->questions[i];

		if (q->type == EVDNS_TYPE_AAAA) {
			srv.questions_aaaa++;
			continue;	/* no AAAA records: an empty answer */
		}
		srv.questions_a++;
		for (size_t k = 0; srv.rcode == 0 && k < srv.nips; k++) {
			struct in_addr a;

			assert_int_equal(inet_pton(AF_INET, srv.ips[k], &a), 1);
			assert_int_equal(evdns_server_request_add_a_reply(req, q->name, 1, &a, 10), 0);
		}
	}
	assert_int_equal(evdns_server_request_respond(req, srv.rcode), 0);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
	event_base_loopbreak(srv.base);
}

/* Run the loop until pred() holds (checked every 10 ms); fails after 3 s. */
static void
run_until(bool (*pred)(const struct config_pool *), const struct config_pool *p, const char *what)
{
	struct timeval tick = { 0, 10000 }, limit = { 3, 0 };
	bool expired = false;
	struct event *deadline = evtimer_new(srv.base, deadline_cb, &expired);

	assert_non_null(deadline);
	evtimer_add(deadline, &limit);
	while (!pred(p) && !expired) {
		event_base_loopexit(srv.base, &tick);
		event_base_dispatch(srv.base);
	}
	event_free(deadline);
	if (!pred(p))
		fail_msg("not reached within 3 s: %s", what);
}

/* Whether the slots of the pool's group (servers 1..4) hold exactly want. */
static const char *want[8];
static size_t nwant;

static bool
slots_match(const struct config_pool *p)
{
	size_t present = 0;

	for (size_t i = 1; i <= 4; i++) {
		const struct config_server *s = &p->servers[i];
		struct sockaddr_storage ss;
		socklen_t len;
		char ip[64];
		bool found = false;

		if (!atomic_load(&s->rt->present)) {
			if (server_usable(s))
				return false;
			continue;
		}
		if (!server_usable(s))
			return false;
		present++;
		server_address(s, &ss, &len);
		if (ss.ss_family != AF_INET || ntohs(((struct sockaddr_in *)&ss)->sin_port) != 3000)
			return false;
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		for (size_t k = 0; k < nwant; k++)
			found |= strcmp(ip, want[k]) == 0;
		if (!found)
			return false;
	}
	return present == nwant;
}

static bool
asked_again(const struct config_pool *p)
{
	(void)p;
	return srv.questions_a >= 10;
}

#define EXPECT(p, ...) do { \
	const char *w_[] = { __VA_ARGS__ }; \
	nwant = sizeof(w_) / sizeof(w_[0]); \
	memcpy(want, w_, sizeof(w_)); \
	run_until(slots_match, p, #__VA_ARGS__); \
} while (0)

#define SERVE(...) do { \
	const char *s_[] = { __VA_ARGS__ }; \
	srv.nips = sizeof(s_) / sizeof(s_[0]); \
	memcpy(srv.ips, s_, sizeof(s_)); \
} while (0)

static char *
conf_text(int port, const char *extra)
{
	static char text[1024];

	snprintf(text, sizeof(text), "resolvers = \"127.0.0.1:%d\"\n" LISTENER
		"pool \"p\" {\n"
		"  resolve_interval = 100ms\n"
		"  resolve_family = %s\n"
		"  server \"fixed\" { address = \"10.9.9.9:80\" }\n"
		"  server \"api\" { address = \"api.test:3000\" max_addresses = 4 }\n"
		"}\n", port, extra);
	return text;
}

static void
test_discovery_end_to_end(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct evdns_server_port *port;
	struct config *cfg, *next;
	const struct config_pool *p;
	evutil_socket_t fd;

	(void)state;
	memset(&srv, 0, sizeof(srv));
	srv.base = event_base_new();
	assert_non_null(srv.base);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	assert_int_equal(evutil_make_socket_nonblocking(fd), 0);
	port = evdns_add_server_port_with_base(srv.base, fd, 0, server_cb, NULL);
	assert_non_null(port);

	cfg = load_ok(conf_text(ntohs(sin.sin_port), "any"));
	assert_int_equal(pool_attach(cfg, NULL), 0);
	p = &cfg->pools[0];
	SERVE("10.0.0.1", "10.0.0.2");
	assert_int_equal(dns_start(srv.base, cfg), 0);
	EXPECT(p, "10.0.0.1", "10.0.0.2");
	assert_true(server_usable(&p->servers[0]));
	assert_true(srv.questions_aaaa >= 1);

	SERVE("10.0.0.2", "10.0.0.3", "10.0.0.4");
	EXPECT(p, "10.0.0.2", "10.0.0.3", "10.0.0.4");
	/* Stable slots: 10.0.0.2 stayed in slot 2. */
	assert_false(atomic_load(&p->servers[1].rt->present));
	assert_true(atomic_load(&p->servers[2].rt->present));

	/* SERVFAIL keeps the set. */
	srv.rcode = DNS_ERR_SERVERFAILED;
	srv.questions_a = 0;
	run_until(asked_again, p, "ten SERVFAIL answers");
	assert_true(slots_match(p));

	/* NXDOMAIN empties it; the fixed server stays. */
	srv.rcode = DNS_ERR_NOTEXIST;
	nwant = 0;
	run_until(slots_match, p, "no address after NXDOMAIN");
	assert_true(server_usable(&p->servers[0]));
	assert_true(pool_any_usable(p));

	srv.rcode = 0;
	SERVE("10.0.0.5");
	EXPECT(p, "10.0.0.5");

	/* A reload carries the slot over at once, then follows the answers;
	 * resolve_family = ipv4 asks no AAAA. */
	next = load_ok(conf_text(ntohs(sin.sin_port), "ipv4"));
	assert_int_equal(pool_attach(next, cfg), 0);
	dns_reload(cfg, next);
	config_unref(cfg);
	cfg = next;
	p = &cfg->pools[0];
	nwant = 1;
	want[0] = "10.0.0.5";
	assert_true(slots_match(p));
	srv.questions_aaaa = 0;
	SERVE("10.0.0.6", "10.0.0.5");
	EXPECT(p, "10.0.0.5", "10.0.0.6");
	assert_int_equal(srv.questions_aaaa, 0);

	dns_stop();
	config_unref(cfg);
	evdns_close_server_port(port);
	evutil_closesocket(fd);
	event_base_free(srv.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_answer_fills_in_order),
		cmocka_unit_test(test_same_set_any_order_changes_nothing),
		cmocka_unit_test(test_gone_address_is_removed_and_kept),
		cmocka_unit_test(test_returning_address_takes_its_slot),
		cmocka_unit_test(test_new_address_prefers_unused_then_old_free_slot),
		cmocka_unit_test(test_slot_freed_now_is_replaced_last),
		cmocka_unit_test(test_more_addresses_than_slots),
		cmocka_unit_test(test_empty_answer_removes_all),
		cmocka_unit_test(test_families_are_distinct),
		cmocka_unit_test(test_named_server_becomes_slots),
		cmocka_unit_test(test_named_server_errors),
		cmocka_unit_test(test_discovery_end_to_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
