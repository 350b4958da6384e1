/*
 * Randomized LDAP filter tests with a fixed seed (printed; PELIX_SEED overrides it):
 * 1. random and mutated texts parse or fail cleanly, and what parses normalizes idempotently;
 * 2. random filter trees, rendered with random blanks and escapes, parse to the expected
 *    normalized text and match like a small reference evaluator over the tree.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pelix/filter.h>
#include <pelix/props.h>

#include <cmocka.h>

#define FUZZ_TEXTS 200000
#define TREES 20000
#define MATCHES_PER_TREE 50
#define PROPS_POOL 1000
#define MAX_DEPTH 5
#define MAX_NODES 4096
#define TEXT_SIZE 65536

/* ---- PRNG (xorshift64*) ---------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n). */
static unsigned below(unsigned n)
{
    return (unsigned)((rnd() >> 32) % n);
}

static bool chance(unsigned percent)
{
    return below(100) < percent;
}

static void seed_rng(void **state)
{
    const char *env = getenv("PELIX_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 20240611ULL;

    (void)state;
    printf("filter_random: seed %llu (set PELIX_SEED to replay)\n", (unsigned long long)seed);
    fflush(stdout);
    rng_state = seed ? seed : 1;
}

/* ---- text buffer ----------------------------------------------------------------------------- */

typedef struct text {
    char s[TEXT_SIZE];
    size_t len;
} text_t;

static void put(text_t *t, char c)
{
    assert_true(t->len + 1 < sizeof(t->s));
    t->s[t->len++] = c;
    t->s[t->len] = '\0';
}

static void puts_(text_t *t, const char *s)
{
    while (*s) {
        put(t, *s++);
    }
}

/* ---- random filter trees --------------------------------------------------------------------- */

typedef enum kind { K_AND, K_OR, K_NOT, K_EQ, K_LE, K_GE, K_PRESENT, K_SUB } kind_t;

typedef struct node {
    kind_t kind;
    int nkids;
    struct node *kids[3];
    int attr;       /* index in ATTRS */
    char name[24];  /* ATTRS[attr] in a random case */
    char value[24]; /* EQ, LE, GE */
    int nparts;     /* SUB: 2 to 4 parts around unescaped stars */
    char parts[4][6];
} node_t;

/* Distinct ignoring case; several need escapes, or start with a character read as an operator. */
static const char *const ATTRS[] = {
    "a",      "Bb",   "x y", "p(q)", "k=v",
    "l<g>",   "t~",   "s*",  "bs\\", " lead",
    "trail ", "&amp", "|or", "!not", "d\xc3\xa9j\xc3\xa0",
};
#define NATTRS (int)(sizeof(ATTRS) / sizeof(ATTRS[0]))

/* Values are short over a small alphabet so that equalities happen. */
static const char VALUE_CHARS[] = "ab1 ()*\\=<>~&|!";

static node_t pool[MAX_NODES];
static int pool_used;

static void random_case(char *out, size_t size, const char *name)
{
    size_t i;
    for (i = 0; name[i] && i + 1 < size; i++) {
        char c = name[i];
        if (c >= 'a' && c <= 'z' && chance(50)) {
            c = (char)(c - 'a' + 'A');
        } else if (c >= 'A' && c <= 'Z' && chance(50)) {
            c = (char)(c - 'A' + 'a');
        }
        out[i] = c;
    }
    out[i] = '\0';
}

static void random_string(char *out, size_t min, size_t max)
{
    size_t len = min + below((unsigned)(max - min + 1));
    for (size_t i = 0; i < len; i++) {
        /* Mostly the first characters, which collide more. */
        out[i] = chance(70) ? VALUE_CHARS[below(4)] : VALUE_CHARS[below(sizeof(VALUE_CHARS) - 1)];
    }
    out[len] = '\0';
}

static long long random_long(void)
{
    return chance(90) ? (long long)below(16) - 3 : (long long)(rnd() >> 1) * (chance(50) ? -1 : 1);
}

static void random_value(char *out, size_t size)
{
    if (chance(40)) {
        long long v = random_long();
        if (v >= 0 && v < 100 && chance(20)) {
            snprintf(out, size, "%03lld", v); /* leading zeros: still the number */
        } else {
            snprintf(out, size, "%lld", v);
        }
    } else {
        random_string(out, 1, 5);
    }
}

static node_t *random_tree(int depth)
{
    node_t *n;

    assert_true(pool_used < MAX_NODES);
    n = &pool[pool_used++];
    memset(n, 0, sizeof(*n));
    if (depth < MAX_DEPTH && chance(depth == 0 ? 80 : 45)) {
        n->kind = (kind_t)below(3);
        n->nkids = n->kind == K_NOT ? 1 : (int)below(4);
        for (int i = 0; i < n->nkids; i++) {
            n->kids[i] = random_tree(depth + 1);
        }
        return n;
    }
    n->kind = (kind_t)(K_EQ + below(5));
    n->attr = (int)below(NATTRS);
    random_case(n->name, sizeof(n->name), ATTRS[n->attr]);
    if (n->kind == K_SUB) {
        do {
            n->nparts = 2 + (int)below(3);
            for (int i = 0; i < n->nparts; i++) {
                random_string(n->parts[i], 0, 3);
            }
            /* A lone "*" would be a presence test. */
        } while (n->nparts == 2 && !n->parts[0][0] && !n->parts[1][0]);
    } else if (n->kind != K_PRESENT) {
        random_value(n->value, sizeof(n->value));
    }
    return n;
}

/* ---- rendering ------------------------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void blanks(text_t *t, bool canonical)
{
    static const char BLANKS[] = " \t\n";
    if (!canonical && chance(25)) {
        int n = 1 + (int)below(2);
        while (n--) {
            put(t, BLANKS[below(3)]);
        }
    }
}

/*
 * Writes `s` escaped: always '\' and `special`, `lead` in first position, blanks at the edges;
 * unless canonical, any other character now and then (an escape of any character is that
 * character).
 */
static void put_escaped(text_t *t, const char *s, const char *special, const char *lead,
                        bool canonical)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        bool need = s[i] == '\\' || strchr(special, s[i]) || (i == 0 && strchr(lead, s[i])) ||
                    (is_blank(s[i]) && (i == 0 || i == len - 1));
        if (need || (!canonical && chance(10))) {
            put(t, '\\');
        }
        put(t, s[i]);
    }
}

/*
 * Canonical rendering is what pelix_filter_text() must print (point 12 of the notes): no blanks,
 * minimal escapes, "&" or "|" of one filter collapsed to it. Otherwise blanks and escapes are
 * random, and nothing collapses.
 */
static void render(text_t *t, const node_t *n, bool canonical)
{
    static const char *const OPS[] = {
        [K_EQ] = "=", [K_LE] = "<=", [K_GE] = ">=", [K_PRESENT] = "=", [K_SUB] = "="};

    if (canonical && (n->kind == K_AND || n->kind == K_OR) && n->nkids == 1) {
        render(t, n->kids[0], canonical);
        return;
    }
    put(t, '(');
    blanks(t, canonical);
    switch (n->kind) {
    case K_AND:
    case K_OR:
    case K_NOT:
        put(t, n->kind == K_AND ? '&' : n->kind == K_OR ? '|' : '!');
        for (int i = 0; i < n->nkids; i++) {
            blanks(t, canonical);
            render(t, n->kids[i], canonical);
        }
        break;
    default:
        put_escaped(t, n->name, "()=<>~*", "&|!", canonical);
        blanks(t, canonical);
        puts_(t, OPS[n->kind]);
        blanks(t, canonical);
        if (n->kind == K_PRESENT) {
            put(t, '*');
        } else if (n->kind == K_SUB) {
            for (int i = 0; i < n->nparts; i++) {
                if (i) {
                    put(t, '*');
                }
                put_escaped(t, n->parts[i], "()*", "", canonical);
            }
        } else {
            put_escaped(t, n->value, "()*", "", canonical);
        }
    }
    blanks(t, canonical);
    put(t, ')');
}

/* ---- reference evaluator --------------------------------------------------------------------- */

typedef struct rprops {
    bool present[NATTRS], is_long[NATTRS];
    long long lv[NATTRS];
    char sv[NATTRS][8];
    pelix_props_t *props;
} rprops_t;

static rprops_t props_pool[PROPS_POOL];

static void random_props(rprops_t *r)
{
    memset(r, 0, sizeof(*r));
    r->props = pelix_props_new();
    assert_non_null(r->props);
    for (int i = 0; i < NATTRS; i++) {
        char key[24];
        if (chance(30)) {
            continue;
        }
        r->present[i] = true;
        random_case(key, sizeof(key), ATTRS[i]);
        if (chance(40)) {
            r->is_long[i] = true;
            r->lv[i] = random_long();
            assert_int_equal(pelix_props_set_long(r->props, key, (int64_t)r->lv[i]), 0);
        } else {
            random_string(r->sv[i], 0, 4);
            assert_int_equal(pelix_props_set_string(r->props, key, r->sv[i]), 0);
        }
    }
}

/* A filter value is a number when it is an optional '-' and decimal digits (as generated). */
static bool as_number(const char *s, long long *ret)
{
    const char *d = s + (*s == '-');
    if (!*d || strspn(d, "0123456789") != strlen(d)) {
        return false;
    }
    *ret = strtoll(s, NULL, 10);
    return true;
}

/* Glob match by backtracking: parts[i] then a star, and so on; the last part ends the string. */
static bool glob_from(const node_t *n, int i, const char *s)
{
    if (i < 0 || i >= n->nparts || i >= 4) {
        return false; /* cannot happen; tells the compiler the index stays in bounds */
    }
    size_t plen = strlen(n->parts[i]);
    if (i == n->nparts - 1) {
        size_t len = strlen(s);
        return len >= plen && strcmp(s + len - plen, n->parts[i]) == 0;
    }
    for (;; s++) {
        if (strncmp(s, n->parts[i], plen) == 0 && glob_from(n, i + 1, s + plen)) {
            return true;
        }
        if (!*s) {
            return false;
        }
    }
}

static bool ref_match(const node_t *n, const rprops_t *r)
{
    long long num;
    int c;

    switch (n->kind) {
    case K_AND:
    case K_OR:
        for (int i = 0; i < n->nkids; i++) {
            if (ref_match(n->kids[i], r) != (n->kind == K_AND)) {
                return n->kind != K_AND;
            }
        }
        return n->kind == K_AND;
    case K_NOT:
        return !ref_match(n->kids[0], r);
    default:
        break;
    }
    if (!r->present[n->attr]) {
        return false;
    }
    if (n->kind == K_PRESENT) {
        return r->is_long[n->attr] || r->sv[n->attr][0];
    }
    if (n->kind == K_SUB) {
        const char *s = r->sv[n->attr];
        size_t first = strlen(n->parts[0]);
        return !r->is_long[n->attr] && strncmp(s, n->parts[0], first) == 0 &&
               glob_from(n, 1, s + first);
    }
    if (r->is_long[n->attr]) {
        if (!as_number(n->value, &num)) {
            return false;
        }
        c = (r->lv[n->attr] > num) - (r->lv[n->attr] < num);
    } else {
        c = strcmp(r->sv[n->attr], n->value);
    }
    return n->kind == K_EQ ? c == 0 : n->kind == K_LE ? c <= 0 : c >= 0;
}

static int setup(void **state)
{
    seed_rng(state);
    for (int i = 0; i < PROPS_POOL; i++) {
        random_props(&props_pool[i]);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < PROPS_POOL; i++) {
        props_pool[i].props = pelix_props_free(props_pool[i].props);
    }
    return 0;
}

/* ---- checks ---------------------------------------------------------------------------------- */

/* Parses `text`; on failure checks the error is a clean syntax error and returns NULL. */
static pelix_filter_t *parse_or_clean_error(const char *text, size_t len)
{
    pelix_filter_t *f = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;
    int rc = pelix_filter_parse(text, &f, &err);

    if (rc == 0) {
        assert_non_null(f);
        return f;
    }
    if (rc != PELIX_E_FILTER_SYNTAX || f || err.code != rc || !err.text[0] || err.position < 0 ||
        (size_t)err.position > len) {
        fail_msg("'%s': rc %d, position %ld, text '%s'", text, rc, err.position, err.text);
    }
    return NULL;
}

/* The normalized text parses again to the same text and to a filter that matches the same. */
static void check_normalized(pelix_filter_t *f, const char *source)
{
    const char *norm = pelix_filter_text(f);
    pelix_filter_t *again = NULL;
    pelix_error_t err = PELIX_ERROR_INIT;

    assert_non_null(norm);
    if (pelix_filter_parse(norm, &again, &err) != 0) {
        fail_msg("'%s' normalizes to '%s', which does not parse: %s", source, norm, err.text);
    }
    if (strcmp(pelix_filter_text(again), norm) != 0) {
        fail_msg("'%s' normalizes to '%s', then to '%s'", source, norm, pelix_filter_text(again));
    }
    for (int i = 0; i < 8; i++) {
        const pelix_props_t *p = props_pool[below(PROPS_POOL)].props;
        if (pelix_filter_match(f, p) != pelix_filter_match(again, p)) {
            fail_msg("'%s' and its normalized '%s' match differently", source, norm);
        }
    }
    pelix_filter_unref(again);
}

static void random_bytes(text_t *t)
{
    static const char BIASED[] = "()&|!=<>~*\\ ab1";
    size_t len = below(48);

    t->len = 0;
    t->s[0] = '\0';
    if (chance(60)) {
        put(t, '(');
    }
    while (t->len < len) {
        put(t, chance(85) ? BIASED[below(sizeof(BIASED) - 1)] : (char)(1 + below(255)));
    }
}

/* A rendered random tree with 1 to 3 byte edits. */
static void mutated_tree(text_t *t)
{
    pool_used = 0;
    t->len = 0;
    t->s[0] = '\0';
    render(t, random_tree(1), false);
    for (int edits = 1 + (int)below(3); edits > 0 && t->len > 0; edits--) {
        size_t at = below((unsigned)t->len);
        char c = chance(80) ? "()&|!=<>~*\\ "[below(12)] : (char)(1 + below(255));
        switch (below(3)) {
        case 0:
            t->s[at] = c;
            break;
        case 1:
            memmove(t->s + at, t->s + at + 1, t->len - at);
            t->len--;
            break;
        default:
            assert_true(t->len + 2 < sizeof(t->s));
            memmove(t->s + at + 1, t->s + at, t->len - at + 1);
            t->s[at] = c;
            t->len++;
        }
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_random_texts(void **state)
{
    static text_t t;
    int parsed = 0;

    (void)state;
    for (int i = 0; i < FUZZ_TEXTS; i++) {
        pelix_filter_t *f;
        if (i % 2) {
            random_bytes(&t);
        } else {
            mutated_tree(&t);
        }
        f = parse_or_clean_error(t.s, t.len);
        if (f) {
            parsed++;
            check_normalized(f, t.s);
            pelix_filter_unref(f);
        }
    }
    print_message("%d random texts, %d parsed\n", FUZZ_TEXTS, parsed);
    assert_true(parsed > FUZZ_TEXTS / 20);
}

static void test_random_trees(void **state)
{
    static text_t text, canon;
    long matched = 0, total = 0;

    (void)state;
    for (int i = 0; i < TREES; i++) {
        node_t *root;
        pelix_filter_t *f;

        pool_used = 0;
        root = random_tree(0);
        text.len = canon.len = 0;
        render(&text, root, false);
        render(&canon, root, true);
        f = parse_or_clean_error(text.s, text.len);
        if (!f) {
            fail_msg("tree %d: '%s' does not parse", i, text.s);
        }
        if (strcmp(pelix_filter_text(f), canon.s) != 0) {
            fail_msg("tree %d: '%s' normalizes to '%s', expected '%s'", i, text.s,
                     pelix_filter_text(f), canon.s);
        }
        check_normalized(f, text.s);
        for (int j = 0; j < MATCHES_PER_TREE; j++) {
            const rprops_t *r = &props_pool[below(PROPS_POOL)];
            bool want = ref_match(root, r);
            if (pelix_filter_match(f, r->props) != want) {
                char *json = NULL;
                pelix_props_to_json(r->props, &json);
                fail_msg("tree %d: '%s' on %s: expected %d", i, canon.s, json, want);
            }
            matched += want;
            total++;
        }
        pelix_filter_unref(f);
    }
    print_message("%d trees, %ld matches, %ld true\n", TREES, total, matched);
    /* Both outcomes are common enough to mean something. */
    assert_true(matched > total / 10 && matched < total * 9 / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_texts),
        cmocka_unit_test(test_random_trees),
    };
    return cmocka_run_group_tests_name("filter_random", tests, setup, teardown);
}
