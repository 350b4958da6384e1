/* The parsed form of an LDAP filter, shared by the parser and the matcher. */
#ifndef PELIX_FILTER_INTERNAL_H
#define PELIX_FILTER_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <pelix/filter.h>

typedef enum filter_kind {
    FILTER_AND,
    FILTER_OR,
    FILTER_NOT,
    FILTER_EQ,
    FILTER_APPROX,
    FILTER_LT,
    FILTER_LE,
    FILTER_GT,
    FILTER_GE,
    FILTER_PRESENT,
    FILTER_SUBSTRING,        /* "=" with wildcards */
    FILTER_APPROX_SUBSTRING, /* "~=" with wildcards */
} filter_kind_t;

typedef struct filter_node {
    filter_kind_t kind;
    /* Composites. */
    struct filter_node **kids;
    size_t nkids;
    /* Items. */
    char *attr;
    char *value; /* unescaped; for substrings, NULL */
    /* Substrings: parts[0] must start the string, parts[nparts-1] end it, the others appear in
     * order between; an empty first/last part means no anchor. */
    char **parts;
    size_t nparts;
    /* The value read as a number or a boolean, when it reads as one. */
    bool has_long;
    int64_t lval;
    bool has_double;
    double dval;
    int bval; /* -1: not a boolean */
} filter_node_t;

struct pelix_filter {
    atomic_int refs;
    filter_node_t *root;
    char *text; /* normalized */
};

void filter__node_free(filter_node_t *n);

#endif
