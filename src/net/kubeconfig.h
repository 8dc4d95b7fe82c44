/* kubeconfig.h - where the Kubernetes API is and how to authenticate to it.
 *
 * Two sources, as client-go has them: a kubeconfig file (YAML, read with
 * libyaml, or JSON) read through its current context or a named one; or
 * the in-cluster service account
 * (KUBERNETES_SERVICE_HOST/PORT, and token + ca.crt in the service-account
 * directory).  The result is flat: one server, one way to trust it, one
 * way to authenticate.
 *
 * Supported in a kubeconfig: clusters (server, certificate-authority,
 * certificate-authority-data, insecure-skip-tls-verify), users (token,
 * tokenFile, username/password, client-certificate[-data] with
 * client-key[-data], as kubeadm and kind write them), contexts (cluster,
 * user, namespace), current-context.  Refused with a clear error: exec and
 * auth-provider plugins, proxy-url, a certificate without its key.
 * Unknown keys are ignored, as kubectl ignores them.
 *
 * YAML: one document of YAML 1.1 as libyaml reads it (block and flow
 * style, quoted keys and values, block scalars | and >, comments, the
 * core tags !!str !!int !!bool !!null).  Plain values are typed as
 * kubectl's Go YAML types them: null (empty, ~, null), true/false (three
 * spellings each), decimal integers, else strings.  Refused, with the line
 * and the reason: anchors and aliases (kubectl writes none, and refusing
 * them rules out alias bombs), other tags, several documents, duplicate
 * keys, keys that are collections, NUL characters, nesting deeper than
 * GP_KUBECONFIG_MAX_DEPTH and more than GP_KUBECONFIG_MAX_NODES values.
 */
#ifndef GP_NET_KUBECONFIG_H
#define GP_NET_KUBECONFIG_H

#include <stddef.h>

/* Where in-cluster credentials live unless told otherwise. */
#define GP_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Hard caps on what is read from disk. */
#define GP_KUBECONFIG_MAX_BYTES (1u << 20)
#define GP_KUBE_TOKEN_MAX_BYTES 16384
#define GP_KUBE_PEM_MAX_BYTES 65536 /* a CA bundle, certificate or key */
#define GP_KUBECONFIG_MAX_DEPTH 32     /* nested mappings and lists */
#define GP_KUBECONFIG_MAX_NODES 100000u /* values of all kinds in one file */

struct gp_kubeconfig {
	char *server;      /* "https://host:port" (no trailing slash) */
	char *ca_file;     /* a PEM file to trust, or NULL */
	char *ca_data;     /* PEM bytes to trust (decoded from base64), or NULL */
	size_t ca_len;
	int insecure;      /* insecure-skip-tls-verify */
	char *token;       /* bearer token, or NULL */
	char *token_file;  /* re-read on change (service accounts rotate), or NULL */
	char *user;        /* basic authentication, or NULL */
	char *password;
	char *cert_pem;    /* TLS client certificate (PEM), or NULL ... */
	size_t cert_len;
	char *key_pem;     /* ... and its key, read from file or decoded */
	size_t key_len;
	char *namespace;   /* the context's namespace, or NULL */
	char *context;     /* name of the context used; NULL in-cluster */
};

/* Read a kubeconfig from `text` (YAML or JSON).  `dir` is the directory of
 * the file, against which relative paths resolve (NULL: the current one);
 * `context` picks a context (NULL: current-context).  Returns 0, or -EINVAL
 * / -ENOTSUP with the reason in err. */
int gp_kubeconfig_parse(struct gp_kubeconfig *kc, const char *text, size_t len, const char *dir,
			const char *context, char *err, size_t n) __attribute__((warn_unused_result));

/* The same, from a file (at most GP_KUBECONFIG_MAX_BYTES). */
int gp_kubeconfig_load(struct gp_kubeconfig *kc, const char *path, const char *context, char *err,
		       size_t n) __attribute__((warn_unused_result));

/* In-cluster: server from KUBERNETES_SERVICE_HOST/PORT (https), the token
 * file and ca.crt from `sa_dir` (NULL: GP_KUBE_SA_DIR).  Returns 0 or
 * -ENOENT / -EINVAL with the reason in err. */
int gp_kubeconfig_in_cluster(struct gp_kubeconfig *kc, const char *sa_dir, char *err, size_t n)
	__attribute__((warn_unused_result));

void gp_kubeconfig_free(struct gp_kubeconfig *kc);

/* Decode standard base64 (padding optional; line breaks skipped, as Go's
 * decoder skips them in a YAML block scalar) into a new buffer.  Returns
 * it (NUL-terminated for convenience) with its length in *out_len, or NULL
 * if the text is not base64. */
char *gp__base64_decode(const char *s, size_t len, size_t *out_len);

/* The YAML reader under gp_kubeconfig_parse (rules above), for tests:
 * `len` bytes of `text` (need not be NUL-terminated, at most
 * GP_KUBECONFIG_MAX_BYTES) into a new jansson value, a mapping or a list
 * (the caller owns it), or NULL with "line N: why" in err. */
struct json_t;
struct json_t *gp__kubeconfig_yaml(const char *text, size_t len, char *err, size_t n);

#endif
