/*
 * duo.h - the GA4GH Data Use Ontology terms consent scopes and access
 * purposes are written in, and the coverage rule the registry applies.
 *
 * The table is ../shared/data/duo/duo.csv embedded as static data (ids,
 * shorthands, labels), so every node decides coverage from the same terms.
 *
 * Consent scopes: "PARTICIPATION", a permission (NRES, GRU, HMB, POA, DS or
 * "DS:<disease>", e.g. "DS:MONDO:0005148") or a modifier (NPU, NCU, IRB,
 * PUB, ...). Access purposes: one permission other than NRES, optionally
 * followed by the modifiers the grantee accepts, joined by '+':
 * "HMB", "DS:MONDO:0005148", "GRU+NPU+PUB".
 *
 * Coverage (duo_covers): a participant's scopes cover a purpose when
 *   1. PARTICIPATION is among them (withdrawn participation covers nothing);
 *   2. one consented permission covers the purpose's permission:
 *        NRES and GRU cover every purpose (GRU is any research purpose),
 *        HMB covers HMB and every DS, DS:X covers DS:X only (plain DS only
 *        plain DS), POA covers POA only;
 *   3. every restricting modifier consented to is declared by the purpose
 *      (NPU consent + "HMB" purpose: refused; "HMB+NPU": covered), where
 *      NPUNCU counts as NPU and NCU together, and CC (clinical care, which
 *      widens use) restricts nothing;
 *   4. NPOA (no population-origins research) refuses a POA purpose.
 */
#ifndef DUO_H
#define DUO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DUO_PARTICIPATION "PARTICIPATION"
#define DUO_DISEASE_MAX   64 /* bytes of the disease after "DS:" */
#define DUO_SCOPE_MAX     80 /* bytes of one scope or purpose string */

enum duo_kind {
    DUO_CLASS = 0,  /* an ontology class, not usable as a code */
    DUO_PERMISSION, /* what use is allowed */
    DUO_MODIFIER,   /* conditions on that use */
};

struct duo_term {
    const char *id;        /* "DUO:0000042" */
    const char *shorthand; /* "GRU"; "" for classes */
    const char *label;
    enum duo_kind kind;
};

/* The embedded table, in the csv's order. */
size_t duo_term_count(void);
const struct duo_term *duo_term_at(size_t i);
/* A usable code by shorthand (exact, case-sensitive); NULL otherwise. */
const struct duo_term *duo_lookup(const char *shorthand);

enum duo_scope_kind {
    DUO_SCOPE_PARTICIPATION = 1,
    DUO_SCOPE_PERMISSION,
    DUO_SCOPE_MODIFIER,
};

struct duo_scope {
    enum duo_scope_kind kind;
    const struct duo_term *term;       /* NULL for PARTICIPATION */
    char disease[DUO_DISEASE_MAX + 1]; /* DS only; "" when plain DS */
};

/* Parses one consent scope; false when it is not one. */
bool duo_scope_parse(const char *s, struct duo_scope *out);

struct duo_purpose {
    const struct duo_term *permission; /* GRU, HMB, DS or POA */
    char disease[DUO_DISEASE_MAX + 1];
    uint32_t modifiers; /* bit i = duo_term_at(i) */
};

/* Parses an access purpose; false when it is not one (unknown code, NRES,
 * a modifier first, a repeated modifier, over DUO_SCOPE_MAX). */
bool duo_purpose_parse(const char *s, struct duo_purpose *out);

/* The coverage rule above over n consent scopes (invalid ones count for
 * nothing). */
bool duo_covers(const char *const *scopes, size_t n,
                const struct duo_purpose *purpose);

#endif /* DUO_H */
