/* test_sched_kubeconfig.c - where the Kubernetes API is: kubeconfig YAML
 * (read with libyaml), kubeconfig interpretation and in-cluster
 * credentials (net/kubeconfig.c), and base64. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "net/kubeconfig.h"

/* What `kubectl config view --raw` writes: sequences at their key's
 * indentation, base64 CA data, an empty flow mapping. */
static const char kubectl_yaml[] =
	"apiVersion: v1\n"
	"clusters:\n"
	"- cluster:\n"
	"    certificate-authority-data: aGVsbG8gQ0E=\n"
	"    server: https://127.0.0.1:6443/\n"
	"  name: kind-kind\n"
	"- cluster:\n"
	"    insecure-skip-tls-verify: true\n"
	"    server: https://prod.example:443\n"
	"  name: prod\n"
	"contexts:\n"
	"- context:\n"
	"    cluster: kind-kind\n"
	"    user: kind-kind\n"
	"  name: kind-kind\n"
	"- context:\n"
	"    cluster: prod\n"
	"    namespace: gpu-jobs\n"
	"    user: ops\n"
	"  name: prod\n"
	"current-context: kind-kind\n"
	"kind: Config\n"
	"preferences: {}\n"
	"users:\n"
	"- name: kind-kind\n"
	"  user:\n"
	"    token: abc.def-ghi\n"
	"- name: ops\n"
	"  user:\n"
	"    password: \"s3cr\\\"t\"\n"
	"    username: 'o''brien'\n";

static json_t *yaml(const char *text, char *err, size_t n)
{
	return gp__kubeconfig_yaml(text, strlen(text), err, n);
}

static void test_yaml_kubectl_layout(void **state)
{
	char err[256];
	json_t *doc = yaml(kubectl_yaml, err, sizeof err), *c;

	(void)state;
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "kind")), "Config");
	assert_int_equal(json_array_size(json_object_get(doc, "clusters")), 2);
	c = json_object_get(json_array_get(json_object_get(doc, "clusters"), 1), "cluster");
	assert_true(json_is_true(json_object_get(c, "insecure-skip-tls-verify")));
	assert_true(json_is_object(json_object_get(doc, "preferences")));
	assert_int_equal(json_object_size(json_object_get(doc, "preferences")), 0);
	json_decref(doc);
}

static void test_yaml_scalars_and_comments(void **state)
{
	char err[256];
	json_t *doc = yaml("# a comment\n"
			   "---\n"
			   "a: plain text here   # trailing comment\n"
			   "b: \"tab\\there \\u00e9 #not a comment\"\n"
			   "c: 'it''s'\n"
			   "d: 42\n"
			   "e: -7\n"
			   "f: ~\n"
			   "g:\n"
			   "h: False\n"
			   "i: https://x:6443/p#frag\n"
			   "\"quoted key\": v\n"
			   "j: []\n"
			   "k: 1.5\n",
			   err, sizeof err);

	(void)state;
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "a")), "plain text here");
	assert_string_equal(json_string_value(json_object_get(doc, "b")),
			    "tab\there \xc3\xa9 #not a comment");
	assert_string_equal(json_string_value(json_object_get(doc, "c")), "it's");
	assert_int_equal(json_integer_value(json_object_get(doc, "d")), 42);
	assert_int_equal(json_integer_value(json_object_get(doc, "e")), -7);
	assert_true(json_is_null(json_object_get(doc, "f")));
	assert_true(json_is_null(json_object_get(doc, "g")));
	assert_true(json_is_false(json_object_get(doc, "h")));
	assert_string_equal(json_string_value(json_object_get(doc, "i")), "https://x:6443/p#frag");
	assert_string_equal(json_string_value(json_object_get(doc, "quoted key")), "v");
	assert_true(json_is_array(json_object_get(doc, "j")));
	assert_string_equal(json_string_value(json_object_get(doc, "k")), "1.5");
	json_decref(doc);
}

static void test_yaml_indented_sequences_and_nesting(void **state)
{
	char err[256];
	json_t *doc = yaml("users:\n"
			   "  - name: a\n"
			   "    user:\n"
			   "      exec:\n"
			   "        args:\n"
			   "          - eks\n"
			   "          - get-token\n"
			   "  - name: b\n"
			   "top: 1\n",
			   err, sizeof err),
	       *users, *args;

	(void)state;
	assert_non_null(doc);
	users = json_object_get(doc, "users");
	assert_int_equal(json_array_size(users), 2);
	args = json_object_get(
		json_object_get(json_object_get(json_array_get(users, 0), "user"), "exec"), "args");
	assert_int_equal(json_array_size(args), 2);
	assert_string_equal(json_string_value(json_array_get(args, 1)), "get-token");
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 1), "name")),
			    "b");
	assert_int_equal(json_integer_value(json_object_get(doc, "top")), 1);
	json_decref(doc);
}

/* What is refused is refused with the line and the reason: libyaml's own
 * complaints for text that is not YAML, ours for YAML a kubeconfig must
 * not use. */
static void test_yaml_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"a: 1\n\tb: 2\n", "line 2: found a tab character that violates indentation"},
		{"a: &x 1\n", "line 1: anchors and aliases are not supported"},
		{"a: 1\nb: *x\n", "line 2: anchors and aliases are not supported"},
		{"a: 1\nb: &x\n  c: 2\n", "line 2: anchors and aliases are not supported"},
		{"a: !foo 1\n", "line 1: tag '!foo' is not supported"},
		{"a: !!float 1.5\n", "line 1: tag 'tag:yaml.org,2002:float' is not supported"},
		{"a: !!int x\n", "line 1: 'x' is not a valid !!int"},
		{"a: !!seq {b: 1}\n", "is not supported"},
		{"a: 1\n---\nb: 2\n", "line 2: several YAML documents in one file are not supported"},
		{"a: 1\na: 2\n", "line 2: duplicate key 'a'"},
		{"{a: 1, b: 2, a: 3}\n", "line 1: duplicate key 'a'"},
		{"? [a]\n: 1\n", "line 1: a key must be a name, not a list"},
		{"{{a: 1}: 2}\n", "line 1: a key must be a name, not a mapping"},
		{"a:\n    b: 1\n  c: 2\n", "line 3: did not find expected key"},
		{"a: 1\n  b: 2\n", "line 2: mapping values are not allowed in this context"},
		{"a: \"open\n", "while scanning a quoted scalar at line 1"},
		{"a: 'x' y\n", "line 1: did not find expected key"},
		{"a: b: c\n", "line 1: mapping values are not allowed"},
		{"a: [1, 2\n", "did not find expected ',' or ']'"},
		{"just text\n", "line 1: expected a mapping or a sequence at the top"},
		{"", "line 1: empty document"},
		{"# nothing but a comment\n", "line 1: empty document"},
		{"a: \"\\q\"\n", "line 1: found unknown escape character"},
		{"a: \"\\ud800\"\n", "line 1: found invalid Unicode character escape code"},
		{"a: \"x\\0y\"\n", "line 1: a NUL character in a string is not supported"},
		{"a: 1\nb: \xff\n", "line 2: invalid leading UTF-8 octet"},
		{"a: \x01\n", "line 1: control characters are not allowed"},
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		json_t *doc = yaml(bad[i].text, err, sizeof err);
		if (doc)
			fail_msg("accepted %s", bad[i].text);
		if (!strstr(err, bad[i].why))
			fail_msg("'%s': said '%s', want '%s'", bad[i].text, err, bad[i].why);
	}
}

/* YAML the old hand-written reader refused and libyaml reads: flow
 * collections, block scalars, multi-line plain scalars, explicit
 * documents, tags of the core schema. */
static void test_yaml_beyond_the_old_subset(void **state)
{
	char err[256];
	json_t *doc = yaml("%YAML 1.1\n"
			   "--- # the one document\n"
			   "flow: {a: 1, 'b c': [x, \"y\", {d: ~}], e: []}\n"
			   "literal: |\n"
			   "  line one\n"
			   "  line two\n"
			   "stripped: |-\n"
			   "  no newline\n"
			   "folded: >\n"
			   "  folded\n"
			   "  text\n"
			   "multi: a plain\n"
			   "  scalar on two lines\n"
			   "str: !!str 42\n"
			   "int: !!int 42\n"
			   "nul: !!null ''\n"
			   "bool: !!bool true\n"
			   "? explicit key\n"
			   ": explicit value\n"
			   "...\n",
			   err, sizeof err),
	       *flow, *bc;

	(void)state;
	if (!doc)
		fail_msg("refused: %s", err);
	flow = json_object_get(doc, "flow");
	assert_int_equal(json_integer_value(json_object_get(flow, "a")), 1);
	bc = json_object_get(flow, "b c");
	assert_int_equal(json_array_size(bc), 3);
	assert_string_equal(json_string_value(json_array_get(bc, 1)), "y");
	assert_true(json_is_null(json_object_get(json_array_get(bc, 2), "d")));
	assert_true(json_is_array(json_object_get(flow, "e")));
	assert_string_equal(json_string_value(json_object_get(doc, "literal")),
			    "line one\nline two\n");
	assert_string_equal(json_string_value(json_object_get(doc, "stripped")), "no newline");
	assert_string_equal(json_string_value(json_object_get(doc, "folded")), "folded text\n");
	assert_string_equal(json_string_value(json_object_get(doc, "multi")),
			    "a plain scalar on two lines");
	assert_string_equal(json_string_value(json_object_get(doc, "str")), "42");
	assert_int_equal(json_integer_value(json_object_get(doc, "int")), 42);
	assert_true(json_is_null(json_object_get(doc, "nul")));
	assert_true(json_is_true(json_object_get(doc, "bool")));
	assert_string_equal(json_string_value(json_object_get(doc, "explicit key")),
			    "explicit value");
	json_decref(doc);
	/* A flow sequence at the top is YAML too (a kubeconfig it is not). */
	doc = yaml("[a, b]", err, sizeof err);
	assert_int_equal(json_array_size(doc), 2);
	json_decref(doc);
}

/* The classic alias bomb: refused at its first anchor, before anything is
 * expanded (the old reader refused it too; libyaml's document API would
 * have built it). */
static void test_yaml_alias_bomb(void **state)
{
	char err[256];

	(void)state;
	assert_null(yaml("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
			 "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			 "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			 "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
			 err, sizeof err));
	assert_string_equal(err, "line 1: anchors and aliases are not supported");
}

static void test_yaml_caps(void **state)
{
	char err[256], *deep, *big;
	size_t n = 0;

	(void)state;
	/* Nesting past the cap. */
	deep = malloc(64 * 80);
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(deep + n, "%*sk%d:\n", i * 2, "", i);
	n += (size_t)sprintf(deep + n, "%*sleaf: 1\n", 80, "");
	assert_null(gp__kubeconfig_yaml(deep, n, err, sizeof err));
	assert_non_null(strstr(err, "nested deeper than"));
	free(deep);
	/* Size past the cap. */
	big = malloc(GP_KUBECONFIG_MAX_BYTES + 2);
	memset(big, ' ', GP_KUBECONFIG_MAX_BYTES + 1);
	assert_null(gp__kubeconfig_yaml(big, GP_KUBECONFIG_MAX_BYTES + 1, err, sizeof err));
	assert_non_null(strstr(err, "larger than"));
	free(big);
	/* Nesting past the cap in flow style, where one line can open a
	 * thousand lists. */
	big = malloc(2000);
	memset(big, '[', 1000);
	memset(big + 1000, ']', 1000);
	assert_null(gp__kubeconfig_yaml(big, 2000, err, sizeof err));
	assert_string_equal(err, "line 1: nested deeper than 32 levels");
	free(big);
	/* More values than the cap, each small. */
	n = 0;
	big = malloc(3 * GP_KUBECONFIG_MAX_NODES + 16);
	big[n++] = '[';
	for (unsigned i = 0; i <= GP_KUBECONFIG_MAX_NODES; i++) {
		big[n++] = '1';
		big[n++] = ',';
	}
	big[n++] = ']';
	assert_null(gp__kubeconfig_yaml(big, n, err, sizeof err));
	assert_non_null(strstr(err, "more than 100000 values"));
	free(big);
	/* NUL bytes: libyaml would take one for the end of the text. */
	assert_null(gp__kubeconfig_yaml("a: 1\nb: 2\0c", 11, err, sizeof err));
	assert_string_equal(err, "line 2: NUL byte in the text");
}

static void test_base64(void **state)
{
	size_t n;
	char *s;

	(void)state;
	s = gp__base64_decode("aGVsbG8gQ0E=", 12, &n);
	assert_non_null(s);
	assert_int_equal(n, 8);
	assert_memory_equal(s, "hello CA", 8);
	free(s);
	s = gp__base64_decode("aGk", 3, &n); /* padding optional */
	assert_non_null(s);
	assert_int_equal(n, 2);
	free(s);
	assert_null(gp__base64_decode("aGk*", 4, &n));
	assert_null(gp__base64_decode("aG=k", 4, &n));
	assert_null(gp__base64_decode("aR==", 4, &n)); /* non-zero padding bits */
	s = gp__base64_decode("aGVs\nbG8=\r\n", 11, &n); /* line breaks skipped */
	assert_non_null(s);
	assert_int_equal(n, 5);
	assert_memory_equal(s, "hello", 5);
	free(s);
	assert_null(gp__base64_decode("aGVs bG8=", 9, &n)); /* other blanks are not */
}

static void test_kubeconfig_current_context(void **state)
{
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	assert_int_equal(gp_kubeconfig_parse(&kc, kubectl_yaml, strlen(kubectl_yaml), "/etc/kube",
					     NULL, err, sizeof err),
			 0);
	assert_string_equal(kc.server, "https://127.0.0.1:6443"); /* trailing / dropped */
	assert_string_equal(kc.token, "abc.def-ghi");
	assert_int_equal(kc.ca_len, 8);
	assert_memory_equal(kc.ca_data, "hello CA", 8);
	assert_null(kc.ca_file);
	assert_false(kc.insecure);
	assert_null(kc.namespace);
	assert_string_equal(kc.context, "kind-kind");
	gp_kubeconfig_free(&kc);
}

static void test_kubeconfig_named_context(void **state)
{
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	assert_int_equal(gp_kubeconfig_parse(&kc, kubectl_yaml, strlen(kubectl_yaml), NULL, "prod",
					     err, sizeof err),
			 0);
	assert_string_equal(kc.server, "https://prod.example:443");
	assert_true(kc.insecure);
	assert_string_equal(kc.user, "o'brien");
	assert_string_equal(kc.password, "s3cr\"t");
	assert_null(kc.token);
	assert_string_equal(kc.namespace, "gpu-jobs");
	gp_kubeconfig_free(&kc);
	assert_int_equal(gp_kubeconfig_parse(&kc, kubectl_yaml, strlen(kubectl_yaml), NULL, "dev",
					     err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "no entry named 'dev' in 'contexts'"));
}

/* One config around a cluster and a user body, for the cases below. */
static int one(const char *cluster, const char *user, struct gp_kubeconfig *kc, char *err,
	       size_t n)
{
	char text[2048];

	snprintf(text, sizeof text,
		 "current-context: c\n"
		 "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
		 "clusters:\n- name: k\n  cluster:\n%s"
		 "users:\n- name: u\n  user:\n%s",
		 cluster, user);
	return gp_kubeconfig_parse(kc, text, strlen(text), "/cfg", NULL, err, n);
}

static void test_kubeconfig_users_and_clusters(void **state)
{
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	/* Relative paths resolve against the kubeconfig's directory. */
	assert_int_equal(one("    server: http://h:80\n    certificate-authority: ca.pem\n",
			     "    tokenFile: tok\n", &kc, err, sizeof err),
			 0);
	assert_string_equal(kc.ca_file, "/cfg/ca.pem");
	assert_string_equal(kc.token_file, "/cfg/tok");
	gp_kubeconfig_free(&kc);
	assert_int_equal(one("    server: https://h\n    certificate-authority: /abs/ca.pem\n",
			     "    token: t\n", &kc, err, sizeof err),
			 0);
	assert_string_equal(kc.ca_file, "/abs/ca.pem");
	gp_kubeconfig_free(&kc);
	/* A client certificate with its key, inline, as kubeadm writes it. */
	assert_int_equal(one("    server: https://h\n",
			     "    client-certificate-data: eA==\n    client-key-data: eXo=\n", &kc,
			     err, sizeof err),
			 0);
	assert_int_equal(kc.cert_len, 1);
	assert_memory_equal(kc.cert_pem, "x", 1);
	assert_int_equal(kc.key_len, 2);
	assert_memory_equal(kc.key_pem, "yz", 2);
	assert_null(kc.token);
	gp_kubeconfig_free(&kc);

	/* A client certificate beside a token: both are used. */
	assert_int_equal(one("    server: https://h\n",
			     "    client-certificate-data: eA==\n    client-key-data: eA==\n"
			     "    token: t\n",
			     &kc, err, sizeof err),
			 0);
	assert_string_equal(kc.token, "t");
	assert_int_equal(kc.cert_len, 1);
	gp_kubeconfig_free(&kc);
}

static void test_kubeconfig_refusals(void **state)
{
	static const struct {
		const char *cluster, *user, *why;
		int rc;
	} bad[] = {
		{"    server: https://h\n", "    client-certificate-data: eA==\n",
		 "a client certificate needs its client key", -EINVAL},
		{"    server: https://h\n", "    client-key-data: eA==\n",
		 "a client certificate needs its client key", -EINVAL},
		{"    server: https://h\n", "    client-certificate-data: '*'\n    client-key-data: eA==\n",
		 "client-certificate-data is not base64", -EINVAL},
		{"    server: https://h\n", "    client-certificate: /nonexistent/c.crt\n    client-key-data: eA==\n",
		 "/nonexistent/c.crt", -EINVAL},
		{"    server: https://h\n", "    exec:\n      command: aws\n",
		 "'exec' credential plugins are not supported", -ENOTSUP},
		{"    server: https://h\n", "    auth-provider:\n      name: gcp\n",
		 "'auth-provider' credential plugins", -ENOTSUP},
		{"    server: https://h\n    proxy-url: http://p\n", "    token: t\n",
		 "'proxy-url' is not supported", -ENOTSUP},
		{"    certificate-authority: x\n", "    token: t\n", "has no server", -EINVAL},
		{"    server: ftp://h\n", "    token: t\n", "is not an http(s) URL", -EINVAL},
		{"    server: https://\n", "    token: t\n", "names no host", -EINVAL},
		{"    server: http:///x\n", "    token: t\n", "names no host", -EINVAL},
		{"    server: https://h\n    insecure-skip-tls-verify: yes\n", "    token: t\n",
		 "must be true or false", -EINVAL},
		{"    server: https://h\n    certificate-authority-data: '***'\n", "    token: t\n",
		 "not base64", -EINVAL},
		{"    server: 6443\n", "    token: t\n", "'server' must be a string", -EINVAL},
	};
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = one(bad[i].cluster, bad[i].user, &kc, err, sizeof err);
		if (rc != bad[i].rc || !strstr(err, bad[i].why))
			fail_msg("case %zu: rc %d, said '%s'; want %d, '%s'", i, rc, err, bad[i].rc,
				 bad[i].why);
	}
}

static void test_kubeconfig_json_and_structure(void **state)
{
	static const char json[] =
		"{\"current-context\":\"x\",\"contexts\":[{\"name\":\"x\",\"context\":{"
		"\"cluster\":\"c\",\"user\":\"u\"}}],\"clusters\":[{\"name\":\"c\",\"cluster\":{"
		"\"server\":\"http://h:8080\"}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":"
		"\"j\"}}]}";
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	assert_int_equal(gp_kubeconfig_parse(&kc, json, strlen(json), NULL, NULL, err, sizeof err),
			 0);
	assert_string_equal(kc.server, "http://h:8080");
	assert_string_equal(kc.token, "j");
	gp_kubeconfig_free(&kc);
	assert_int_equal(gp_kubeconfig_parse(&kc, "{\"a\":", 5, NULL, NULL, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "not valid JSON"));
	assert_int_equal(gp_kubeconfig_parse(&kc, "- a\n", 4, NULL, NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "mapping at the top"));
	assert_int_equal(gp_kubeconfig_parse(&kc, "kind: Config\n", 13, NULL, NULL, err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "no current-context"));
	assert_int_equal(gp_kubeconfig_parse(&kc, "current-context: x\ncontexts: 3\n", 31, NULL, NULL,
					     err, sizeof err),
			 -EINVAL);
	assert_non_null(strstr(err, "'contexts' is not a list"));
}

/* Kubeconfigs written by hand rather than by kubectl: flow style, quoted
 * keys, comments everywhere, block scalars (a token, CA data broken over
 * lines as Go's base64 decoder allows). */
static void test_kubeconfig_yaml_styles(void **state)
{
	static const char flow[] =
		"{current-context: c, contexts: [{name: c, context: {cluster: k, user: u,\n"
		"  namespace: ns}}], clusters: [{name: k, cluster: {server: 'https://h:6443'}}],\n"
		" users: [{name: u, user: {token: t0k}}]}\n";
	static const char hand[] =
		"# written by hand\n"
		"\"current-context\": 'c'   # quoted key, single-quoted value\n"
		"contexts:\n"
		"  # a comment between a key and its list\n"
		"  - name: c\n"
		"    context: {cluster: k, user: \"u\"}\n"
		"clusters:\n"
		"- name: k\n"
		"  cluster:\n"
		"    'server': https://h\n"
		"    certificate-authority-data: |\n"
		"      aGVsbG8g\n"
		"      Q0E=\n"
		"users:\n"
		"- name: u # trailing comment\n"
		"  user:\n"
		"    token: |-\n"
		"      abc.def\n";
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	if (gp_kubeconfig_parse(&kc, flow, strlen(flow), NULL, NULL, err, sizeof err))
		fail_msg("flow style refused: %s", err);
	assert_string_equal(kc.server, "https://h:6443");
	assert_string_equal(kc.token, "t0k");
	assert_string_equal(kc.namespace, "ns");
	gp_kubeconfig_free(&kc);
	if (gp_kubeconfig_parse(&kc, hand, strlen(hand), NULL, NULL, err, sizeof err))
		fail_msg("hand-written refused: %s", err);
	assert_string_equal(kc.server, "https://h");
	assert_string_equal(kc.token, "abc.def");
	assert_int_equal(kc.ca_len, 8);
	assert_memory_equal(kc.ca_data, "hello CA", 8);
	gp_kubeconfig_free(&kc);
}

static void test_kubeconfig_yaml_refusals(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		/* Two documents, as `kubectl config view` of two files might be
		 * pasted: which one would be meant? */
		{"current-context: c\n---\ncurrent-context: d\n",
		 "line 2: several YAML documents in one file are not supported"},
		{"current-context: &x c\n", "line 1: anchors and aliases are not supported"},
		{"current-context: c\ncurrent-context: d\n", "line 2: duplicate key 'current-context'"},
		/* Neither JSON nor YAML: both say why. */
		{"{\"current-context\": c", "not valid JSON"},
		{"{\"current-context\": c", "; nor YAML: line "},
		/* A number where a string belongs is named. */
		{"current-context: 7\n", "'current-context' must be a string"},
	};
	struct gp_kubeconfig kc;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int rc = gp_kubeconfig_parse(&kc, bad[i].text, strlen(bad[i].text), NULL, NULL, err,
					     sizeof err);
		if (rc != -EINVAL || !strstr(err, bad[i].why))
			fail_msg("case %zu: rc %d, said '%s'; want '%s'", i, rc, err, bad[i].why);
	}
	/* The size cap holds for JSON as for YAML. */
	{
		size_t big = GP_KUBECONFIG_MAX_BYTES + 1;
		char *text = malloc(big);
		memset(text, ' ', big);
		text[0] = '{';
		assert_int_equal(gp_kubeconfig_parse(&kc, text, big, NULL, NULL, err, sizeof err),
				 -EINVAL);
		assert_non_null(strstr(err, "larger than"));
		free(text);
	}
}

/* A scratch directory with a service account's files. */
static char *sa_dir(const char *token, int with_ca)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[256], path[300], *d;
	FILE *f;

	snprintf(tmpl, sizeof tmpl, "%s/gp-sa-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	d = mkdtemp(tmpl);
	assert_non_null(d);
	if (token) {
		snprintf(path, sizeof path, "%s/token", d);
		f = fopen(path, "w");
		fputs(token, f);
		fclose(f);
	}
	if (with_ca) {
		snprintf(path, sizeof path, "%s/ca.crt", d);
		f = fopen(path, "w");
		fputs("-----BEGIN CERTIFICATE-----\n", f);
		fclose(f);
	}
	return strdup(d);
}

static void rm_sa(char *d)
{
	char path[300];

	snprintf(path, sizeof path, "%s/token", d);
	unlink(path);
	snprintf(path, sizeof path, "%s/ca.crt", d);
	unlink(path);
	rmdir(d);
	free(d);
}

static void test_in_cluster(void **state)
{
	struct gp_kubeconfig kc;
	char err[256], *d = sa_dir("tok", 1), want[400];

	(void)state;
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(gp_kubeconfig_in_cluster(&kc, d, err, sizeof err), 0);
	assert_string_equal(kc.server, "https://10.96.0.1:443");
	snprintf(want, sizeof want, "%s/token", d);
	assert_string_equal(kc.token_file, want);
	snprintf(want, sizeof want, "%s/ca.crt", d);
	assert_string_equal(kc.ca_file, want);
	gp_kubeconfig_free(&kc);
	/* An IPv6 service address gets brackets. */
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(gp_kubeconfig_in_cluster(&kc, d, err, sizeof err), 0);
	assert_string_equal(kc.server, "https://[fd00::1]:443");
	gp_kubeconfig_free(&kc);
	setenv("KUBERNETES_SERVICE_PORT", "https", 1);
	assert_int_equal(gp_kubeconfig_in_cluster(&kc, d, err, sizeof err), -EINVAL);
	rm_sa(d);
	/* No token: refused at once, naming the file. */
	d = sa_dir(NULL, 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(gp_kubeconfig_in_cluster(&kc, d, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/token"));
	rm_sa(d);
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_int_equal(gp_kubeconfig_in_cluster(&kc, "/nonexistent", err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "not in a cluster"));
}

static void test_load_from_file(void **state)
{
	struct gp_kubeconfig kc;
	char err[400], *d = sa_dir(NULL, 0), path[300];
	FILE *f;

	(void)state;
	snprintf(path, sizeof path, "%s/token", d); /* any name will do */
	f = fopen(path, "w");
	fputs("current-context: c\ncontexts:\n- name: c\n  context:\n    cluster: k\n"
	      "clusters:\n- name: k\n  cluster:\n    server: https://h\n"
	      "    certificate-authority: rel/ca.pem\n",
	      f);
	fclose(f);
	assert_int_equal(gp_kubeconfig_load(&kc, path, NULL, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/rel/ca.pem", d);
	assert_string_equal(kc.ca_file, path);
	assert_null(kc.token); /* a context without a user: anonymous */
	gp_kubeconfig_free(&kc);
	rm_sa(d);
	assert_int_equal(gp_kubeconfig_load(&kc, "/nonexistent/kc", NULL, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "cannot read /nonexistent/kc"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_kubectl_layout),
		cmocka_unit_test(test_yaml_scalars_and_comments),
		cmocka_unit_test(test_yaml_indented_sequences_and_nesting),
		cmocka_unit_test(test_yaml_refusals),
		cmocka_unit_test(test_yaml_beyond_the_old_subset),
		cmocka_unit_test(test_yaml_alias_bomb),
		cmocka_unit_test(test_yaml_caps),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_kubeconfig_current_context),
		cmocka_unit_test(test_kubeconfig_named_context),
		cmocka_unit_test(test_kubeconfig_users_and_clusters),
		cmocka_unit_test(test_kubeconfig_refusals),
		cmocka_unit_test(test_kubeconfig_json_and_structure),
		cmocka_unit_test(test_kubeconfig_yaml_styles),
		cmocka_unit_test(test_kubeconfig_yaml_refusals),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_load_from_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
