/*
 * duo.c - the GA4GH Data Use Ontology table (from
 * ../shared/data/duo/duo.csv, same order) and the coverage rule.
 */
#include "duo.h"

#include <string.h>

static const struct duo_term duo_table[] = {
    {"DUO:0000021", "IRB", "ethics approval required", DUO_MODIFIER},
    {"DUO:0000006", "HMB", "health or medical or biomedical research",
     DUO_PERMISSION},
    {"DUO:0000019", "PUB", "publication required", DUO_MODIFIER},
    {"DUO:0000026", "US", "user specific restriction", DUO_MODIFIER},
    {"DUO:0000044", "NPOA",
     "population origins or ancestry research prohibited", DUO_MODIFIER},
    {"DUO:0000020", "COL", "collaboration required", DUO_MODIFIER},
    {"DUO:0000046", "NCU", "non-commercial use only", DUO_MODIFIER},
    {"DUO:0000018", "NPUNCU", "not for profit, non commercial use only",
     DUO_MODIFIER},
    {"DUO:0000012", "RS", "research specific restrictions", DUO_MODIFIER},
    {"DUO:0000025", "TS", "time limit on use", DUO_MODIFIER},
    {"DUO:0000004", "NRES", "no restriction", DUO_PERMISSION},
    {"DUO:0000045", "NPU", "not for profit organisation use only",
     DUO_MODIFIER},
    {"DUO:0000017", "", "data use modifier", DUO_CLASS},
    {"DUO:0000011", "POA", "population origins or ancestry research only",
     DUO_PERMISSION},
    {"DUO:0000024", "MOR", "publication moratorium", DUO_MODIFIER},
    {"DUO:0000016", "GSO", "genetic studies only", DUO_MODIFIER},
    {"DUO:0000029", "RTN", "return to database or resource", DUO_MODIFIER},
    {"DUO:0000043", "CC", "clinical care use", DUO_MODIFIER},
    {"DUO:0000015", "NMDS", "no general methods research", DUO_MODIFIER},
    {"DUO:0000028", "IS", "institution specific restriction", DUO_MODIFIER},
    {"DUO:0000022", "GS", "geographical restriction", DUO_MODIFIER},
    {"DUO:0000007", "DS", "disease specific research", DUO_PERMISSION},
    {"DUO:0000001", "", "data use permission", DUO_CLASS},
    {"DUO:0000042", "GRU", "general research use", DUO_PERMISSION},
    {"DUO:0000027", "PS", "project specific restriction", DUO_MODIFIER},
};

#define DUO_N (sizeof(duo_table) / sizeof(duo_table[0]))
_Static_assert(DUO_N <= 32, "modifier bits fit a uint32_t");

size_t duo_term_count(void)
{
    return DUO_N;
}

const struct duo_term *duo_term_at(size_t i)
{
    return i < DUO_N ? &duo_table[i] : NULL;
}

static const struct duo_term *duo_lookup_n(const char *s, size_t n)
{
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < DUO_N; i++) {
        const char *sh = duo_table[i].shorthand;
        if (duo_table[i].kind != DUO_CLASS && strlen(sh) == n &&
            memcmp(sh, s, n) == 0)
            return &duo_table[i];
    }
    return NULL;
}

const struct duo_term *duo_lookup(const char *shorthand)
{
    if (shorthand == NULL)
        return NULL;
    return duo_lookup_n(shorthand, strlen(shorthand));
}

static uint32_t duo_bit(const struct duo_term *t)
{
    return 1u << (uint32_t)(t - duo_table);
}

static bool duo_is(const struct duo_term *t, const char *shorthand)
{
    return t != NULL && strcmp(t->shorthand, shorthand) == 0;
}

/* Disease ids are ontology CURIEs ("MONDO:0005148"): a closed charset
 * keeps separators ('+') and whitespace out. */
static bool duo_disease_valid(const char *s, size_t n)
{
    if (n == 0 || n > DUO_DISEASE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '.' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A permission with its optional ":disease" (DS only) from s[0..n). */
static bool duo_permission_parse(const char *s, size_t n,
                                 const struct duo_term **perm, char *disease)
{
    const char *colon = memchr(s, ':', n);
    size_t code_len = colon != NULL ? (size_t)(colon - s) : n;
    const struct duo_term *t = duo_lookup_n(s, code_len);
    if (t == NULL || t->kind != DUO_PERMISSION)
        return false;
    disease[0] = '\0';
    if (colon != NULL) {
        size_t dlen = n - code_len - 1;
        if (!duo_is(t, "DS") || !duo_disease_valid(colon + 1, dlen))
            return false;
        memcpy(disease, colon + 1, dlen);
        disease[dlen] = '\0';
    }
    *perm = t;
    return true;
}

bool duo_scope_parse(const char *s, struct duo_scope *out)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > DUO_SCOPE_MAX)
        return false;
    memset(out, 0, sizeof(*out));
    if (strcmp(s, DUO_PARTICIPATION) == 0) {
        out->kind = DUO_SCOPE_PARTICIPATION;
        return true;
    }
    const struct duo_term *t = duo_lookup_n(s, n);
    if (t != NULL && t->kind == DUO_MODIFIER) {
        out->kind = DUO_SCOPE_MODIFIER;
        out->term = t;
        return true;
    }
    if (!duo_permission_parse(s, n, &out->term, out->disease))
        return false;
    out->kind = DUO_SCOPE_PERMISSION;
    return true;
}

bool duo_purpose_parse(const char *s, struct duo_purpose *out)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > DUO_SCOPE_MAX)
        return false;
    memset(out, 0, sizeof(*out));
    const char *plus = memchr(s, '+', n);
    size_t first = plus != NULL ? (size_t)(plus - s) : n;
    if (!duo_permission_parse(s, first, &out->permission, out->disease))
        return false;
    /* NRES is a consent term ("no restriction"), not a use anyone does. */
    if (duo_is(out->permission, "NRES"))
        return false;
    size_t pos = first;
    while (pos < n) { /* at a '+'; each step consumes >= 2 bytes */
        size_t start = pos + 1;
        const char *next = memchr(s + start, '+', n - start);
        size_t end = next != NULL ? (size_t)(next - s) : n;
        const struct duo_term *m = duo_lookup_n(s + start, end - start);
        if (m == NULL || m->kind != DUO_MODIFIER)
            return false;
        if ((out->modifiers & duo_bit(m)) != 0)
            return false;
        out->modifiers |= duo_bit(m);
        pos = end;
    }
    return true;
}

/* Consent permission (with its disease) covers the purpose's permission. */
static bool duo_permission_covers(const struct duo_scope *c,
                                  const struct duo_purpose *p)
{
    if (duo_is(c->term, "NRES") || duo_is(c->term, "GRU"))
        return true;
    if (duo_is(c->term, "HMB"))
        return duo_is(p->permission, "HMB") || duo_is(p->permission, "DS");
    if (duo_is(c->term, "DS"))
        return duo_is(p->permission, "DS") &&
               strcmp(c->disease, p->disease) == 0;
    if (duo_is(c->term, "POA"))
        return duo_is(p->permission, "POA");
    return false;
}

/* NPUNCU is NPU and NCU at once: compare the expanded sets. */
static uint32_t duo_expand(uint32_t mods)
{
    const struct duo_term *both = duo_lookup("NPUNCU");
    const struct duo_term *npu = duo_lookup("NPU");
    const struct duo_term *ncu = duo_lookup("NCU");
    if ((mods & duo_bit(both)) != 0)
        mods |= duo_bit(npu) | duo_bit(ncu);
    if ((mods & duo_bit(npu)) != 0 && (mods & duo_bit(ncu)) != 0)
        mods |= duo_bit(both);
    return mods;
}

bool duo_covers(const char *const *scopes, size_t n,
                const struct duo_purpose *purpose)
{
    bool participation = false;
    bool permitted = false;
    uint32_t restrictions = 0;
    for (size_t i = 0; i < n; i++) {
        struct duo_scope sc;
        if (!duo_scope_parse(scopes[i], &sc))
            continue;
        if (sc.kind == DUO_SCOPE_PARTICIPATION)
            participation = true;
        else if (sc.kind == DUO_SCOPE_PERMISSION)
            permitted = permitted || duo_permission_covers(&sc, purpose);
        else if (!duo_is(sc.term, "CC")) /* CC widens use */
            restrictions |= duo_bit(sc.term);
    }
    if (!participation || !permitted)
        return false;
    if ((restrictions & duo_bit(duo_lookup("NPOA"))) != 0 &&
        duo_is(purpose->permission, "POA"))
        return false;
    uint32_t declared = duo_expand(purpose->modifiers);
    return (duo_expand(restrictions) & ~declared) == 0;
}
