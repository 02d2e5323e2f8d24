/*
 * ctgov.c - protocol and results import (see ctgov.h).
 *
 * Every string put into a message is heap-allocated (empty ones too), so
 * protobuf-c's free_unpacked with the default allocator frees a message
 * built here exactly as it frees an unpacked one.
 */
#include "ctgov.h"

#include "crypto.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void seterr(char *err, size_t err_len, const char *fmt, ...)
    LG_PRINTF(3, 4);
static void seterr(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Copies at most max bytes, cut back to a UTF-8 character boundary. */
static char *dup_bounded(const char *s, size_t max)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    return strndup(s, len);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* obj.a.b... as an object; NULL when any step is missing. */
static json_t *jpath(json_t *obj, const char *a, const char *b)
{
    json_t *x = json_object_get(obj, a);
    if (b && x)
        x = json_object_get(x, b);
    return json_is_object(x) ? x : NULL;
}

Tc__OutcomeType ctgov_outcome_type(const char *s)
{
    if (!strcasecmp(s, "primary"))
        return TC__OUTCOME_TYPE__OUTCOME_PRIMARY;
    if (!strcasecmp(s, "secondary"))
        return TC__OUTCOME_TYPE__OUTCOME_SECONDARY;
    if (!strcasecmp(s, "other") || !strcasecmp(s, "OTHER_PRE_SPECIFIED") ||
        !strcasecmp(s, "POST_HOC"))
        return TC__OUTCOME_TYPE__OUTCOME_OTHER;
    return TC__OUTCOME_TYPE__OUTCOME_UNSPECIFIED;
}

const char *ctgov_outcome_type_name(Tc__OutcomeType t)
{
    switch (t) {
    case TC__OUTCOME_TYPE__OUTCOME_PRIMARY:
        return "primary";
    case TC__OUTCOME_TYPE__OUTCOME_SECONDARY:
        return "secondary";
    case TC__OUTCOME_TYPE__OUTCOME_OTHER:
        return "other";
    default:
        return "unspecified";
    }
}

void ctgov_normalize(const char *in, char *out, size_t out_len)
{
    size_t o = 0;
    bool gap = false;
    if (out_len == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        /* bytes >= 0x80 are parts of UTF-8 letters: keep them as they are */
        bool word = isalnum(*p) || *p >= 0x80;
        if (!word) {
            gap = o > 0;
            continue;
        }
        if (gap && o + 1 < out_len)
            out[o++] = ' ';
        gap = false;
        if (o + 1 < out_len)
            out[o++] = (char)tolower(*p);
    }
    out[o] = '\0';
}

enum record_format ctgov_detect(const void *json_root)
{
    json_t *root = (json_t *)json_root;
    if (!json_is_object(root))
        return RECORD_UNKNOWN;
    if (json_object_get(root, "FullStudiesResponse") ||
        json_object_get(root, "FullStudies") ||
        jpath(root, "Study", "ProtocolSection") ||
        json_object_get(root, "ProtocolSection"))
        return RECORD_CTGOV_V1;
    if (jpath(root, "protocolSection", NULL))
        return RECORD_CTGOV_V2;
    json_t *studies = json_object_get(root, "studies");
    if (json_is_array(studies)) {
        json_t *first = json_array_get(studies, 0);
        if (jpath(first, "protocolSection", NULL))
            return RECORD_CTGOV_V2;
    }
    if (json_object_get(root, "trial_id") || json_object_get(root, "outcomes"))
        return RECORD_OURS;
    return RECORD_UNKNOWN;
}

/* The one study of an API v2 record in either envelope. */
static json_t *v2_study(json_t *root, char *err, size_t err_len)
{
    json_t *studies = json_object_get(root, "studies");
    if (!json_is_array(studies))
        return root;
    if (json_array_size(studies) != 1) {
        seterr(err, err_len,
               "the file lists %zu studies; export one study per file",
               json_array_size(studies));
        return NULL;
    }
    return json_array_get(studies, 0);
}

static json_t *parse_json(const unsigned char *bytes, size_t len,
                          enum record_format *fmt, char *err, size_t err_len)
{
    json_error_t je;
    json_t *root =
        json_loadb((const char *)bytes, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        seterr(err, err_len, "not valid JSON (line %d: %s)", je.line, je.text);
        return NULL;
    }
    *fmt = ctgov_detect(root);
    if (*fmt == RECORD_CTGOV_V1) {
        seterr(err, err_len,
               "unsupported format (classic API v1); export the study as "
               "API v2 JSON (https://clinicaltrials.gov/api/v2/studies/"
               "NCTxxxxxxxx)");
        json_decref(root);
        return NULL;
    }
    if (*fmt == RECORD_UNKNOWN) {
        seterr(err, err_len,
               "neither a ClinicalTrials.gov API v2 study record (no "
               "protocolSection) nor trialchain JSON (no trial_id or "
               "outcomes); see `trialchain protocol register --help`");
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- outcomes ------------------------------------------------------------ */

struct outcome_vec {
    Tc__Outcome **v;
    size_t n, cap;
};

static Tc__Outcome *outcome_new(const char *id, Tc__OutcomeType type,
                                const char *measure, const char *time_frame,
                                const char *description)
{
    Tc__Outcome *o = malloc(sizeof(*o));
    if (!o)
        return NULL;
    tc__outcome__init(o);
    o->type = type;
    o->id = strdup(id);
    o->measure = dup_bounded(measure, CTGOV_TEXT_MAX);
    o->time_frame = dup_bounded(time_frame, CTGOV_TEXT_MAX);
    o->description = dup_bounded(description, CTGOV_TEXT_MAX);
    if (!o->id || !o->measure || !o->time_frame || !o->description) {
        tc__outcome__free_unpacked(o, NULL);
        return NULL;
    }
    return o;
}

static int vec_push(struct outcome_vec *v, Tc__Outcome *o)
{
    if (!o)
        return -1;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        Tc__Outcome **nv = realloc(v->v, cap * sizeof(*nv));
        if (!nv) {
            tc__outcome__free_unpacked(o, NULL);
            return -1;
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = o;
    return 0;
}

void ctgov_outcomes_free(Tc__Outcome **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        tc__outcome__free_unpacked(v[i], NULL);
    free(v);
}

static int v2_outcomes(json_t *study, struct outcome_vec *vec, char *err,
                       size_t err_len)
{
    static const struct {
        const char *key, *prefix;
        Tc__OutcomeType type;
    } kinds[] = {
        {"primaryOutcomes", "P", TC__OUTCOME_TYPE__OUTCOME_PRIMARY},
        {"secondaryOutcomes", "S", TC__OUTCOME_TYPE__OUTCOME_SECONDARY},
        {"otherOutcomes", "O", TC__OUTCOME_TYPE__OUTCOME_OTHER},
    };
    json_t *mod = jpath(study, "protocolSection", "outcomesModule");
    for (size_t k = 0; mod && k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        json_t *arr = json_object_get(mod, kinds[k].key);
        size_t i;
        json_t *item;
        json_array_foreach(arr, i, item)
        {
            char id[32];
            snprintf(id, sizeof(id), "%s%zu", kinds[k].prefix, i + 1);
            if (vec_push(vec,
                         outcome_new(id, kinds[k].type, jstr(item, "measure"),
                                     jstr(item, "timeFrame"),
                                     jstr(item, "description"))) != 0) {
                seterr(err, err_len, "out of memory");
                return -1;
            }
        }
    }
    if (vec->n == 0) {
        seterr(err, err_len,
               "the ClinicalTrials.gov record has no outcomes "
               "(protocolSection.outcomesModule is missing or empty); a "
               "protocol must pre-specify its outcomes: add them to the "
               "record or register our JSON format with an \"outcomes\" "
               "list");
        return -1;
    }
    return 0;
}

static int ours_outcomes(json_t *root, struct outcome_vec *vec, char *err,
                         size_t err_len)
{
    json_t *arr = json_object_get(root, "outcomes");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        seterr(err, err_len,
               "no outcomes: the file needs an \"outcomes\" list with at "
               "least one primary outcome");
        return -1;
    }
    size_t counts[4] = {0};
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        Tc__OutcomeType t = ctgov_outcome_type(jstr(item, "type"));
        if (t == TC__OUTCOME_TYPE__OUTCOME_UNSPECIFIED) {
            seterr(err, err_len,
                   "outcome %zu: \"type\" must be primary, secondary or "
                   "other",
                   i + 1);
            return -1;
        }
        if (!*jstr(item, "measure")) {
            seterr(err, err_len, "outcome %zu: \"measure\" is missing", i + 1);
            return -1;
        }
        char id[32];
        const char *given = jstr(item, "id");
        static const char prefix[] = "?PSO";
        counts[t]++;
        if (*given)
            snprintf(id, sizeof(id), "%.31s", given);
        else
            snprintf(id, sizeof(id), "%c%zu", prefix[t], counts[t]);
        if (vec_push(vec, outcome_new(id, t, jstr(item, "measure"),
                                      jstr(item, "time_frame"),
                                      jstr(item, "description"))) != 0) {
            seterr(err, err_len, "out of memory");
            return -1;
        }
    }
    return 0;
}

int ctgov_import_outcomes(const unsigned char *bytes, size_t len,
                          Tc__Outcome ***out, size_t *n, char *err,
                          size_t err_len)
{
    enum record_format fmt;
    json_t *root = parse_json(bytes, len, &fmt, err, err_len);
    if (!root)
        return -1;
    struct outcome_vec vec = {0};
    int rv = -1;
    if (fmt == RECORD_CTGOV_V2) {
        json_t *study = v2_study(root, err, err_len);
        if (study)
            rv = v2_outcomes(study, &vec, err, err_len);
    } else {
        rv = ours_outcomes(root, &vec, err, err_len);
    }
    json_decref(root);
    if (rv != 0) {
        ctgov_outcomes_free(vec.v, vec.n);
        return -1;
    }
    *out = vec.v;
    *n = vec.n;
    return 0;
}

/* ---- protocols ----------------------------------------------------------- */

void ctgov_protocol_free(Tc__ProtocolRegister *p)
{
    if (p)
        tc__protocol_register__free_unpacked(p, NULL);
}

static Tc__ProtocolRegister *protocol_new(void)
{
    Tc__ProtocolRegister *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    tc__protocol_register__init(p);
    /* replace the shared empty-string defaults with heap strings */
    char **fields[] = {&p->trial_id,       &p->brief_title,
                       &p->official_title, &p->sponsor_name,
                       &p->phase,          &p->study_type,
                       &p->start_date,     &p->primary_completion_date,
                       &p->source,         &p->registry_first_submitted};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        *fields[i] = NULL;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        *fields[i] = strdup("");
        if (!*fields[i]) {
            ctgov_protocol_free(p);
            return NULL;
        }
    }
    return p;
}

static bool set_str(char **field, const char *value, size_t max)
{
    char *s = dup_bounded(value, max);
    if (!s)
        return false;
    free(*field);
    *field = s;
    return true;
}

static bool set_hash(ProtobufCBinaryData *b, const unsigned char *bytes,
                     size_t len)
{
    b->data = malloc(32);
    if (!b->data)
        return false;
    b->len = 32;
    crypto_sha256(bytes, len, b->data);
    return true;
}

static int v2_protocol(json_t *study, Tc__ProtocolRegister *p, char *err,
                       size_t err_len)
{
    json_t *ident = jpath(study, "protocolSection", "identificationModule");
    json_t *status = jpath(study, "protocolSection", "statusModule");
    json_t *sponsor =
        jpath(jpath(study, "protocolSection", "sponsorCollaboratorsModule"),
              "leadSponsor", NULL);
    json_t *design = jpath(study, "protocolSection", "designModule");
    const char *nct = jstr(ident, "nctId");
    if (strncmp(nct, "NCT", 3) != 0 || strlen(nct) != 11) {
        seterr(err, err_len,
               "the record has no valid NCT id "
               "(protocolSection.identificationModule.nctId)");
        return -1;
    }
    char phase[128] = "";
    size_t i;
    json_t *ph;
    json_array_foreach(json_object_get(design, "phases"), i, ph)
    {
        if (!json_is_string(ph))
            continue;
        size_t used = strlen(phase);
        snprintf(phase + used, sizeof(phase) - used, "%s%s", used ? "/" : "",
                 json_string_value(ph));
    }
    json_t *start = jpath(status, "startDateStruct", NULL);
    json_t *pcd = jpath(status, "primaryCompletionDateStruct", NULL);
    json_int_t enrol = json_integer_value(
        json_object_get(jpath(design, "enrollmentInfo", NULL), "count"));
    bool ok =
        set_str(&p->trial_id, nct, 16) &&
        set_str(&p->brief_title, jstr(ident, "briefTitle"), CTGOV_TITLE_MAX) &&
        set_str(&p->official_title, jstr(ident, "officialTitle"),
                CTGOV_TITLE_MAX) &&
        set_str(&p->sponsor_name, jstr(sponsor, "name"), CTGOV_TITLE_MAX) &&
        set_str(&p->phase, phase, sizeof(phase)) &&
        set_str(&p->study_type, jstr(design, "studyType"), 64) &&
        set_str(&p->start_date, jstr(start, "date"), 10) &&
        set_str(&p->primary_completion_date, jstr(pcd, "date"), 10) &&
        set_str(&p->registry_first_submitted,
                jstr(status, "studyFirstSubmitDate"), 10) &&
        set_str(&p->source, "ctgov", 8);
    if (!ok) {
        seterr(err, err_len, "out of memory");
        return -1;
    }
    p->enrollment = enrol > 0 && enrol <= UINT32_MAX ? (uint32_t)enrol : 0;
    p->start_date_actual = !strcmp(jstr(start, "type"), "ACTUAL");
    p->primary_completion_actual = !strcmp(jstr(pcd, "type"), "ACTUAL");
    return 0;
}

static int ours_protocol(json_t *root, Tc__ProtocolRegister *p, char *err,
                         size_t err_len)
{
    const char *id = jstr(root, "trial_id");
    if (!*id || strlen(id) > 64) {
        seterr(err, err_len,
               "\"trial_id\" is missing or longer than 64 characters");
        return -1;
    }
    json_int_t enrol = json_integer_value(json_object_get(root, "enrollment"));
    bool ok =
        set_str(&p->trial_id, id, 64) &&
        set_str(&p->brief_title, jstr(root, "brief_title"), CTGOV_TITLE_MAX) &&
        set_str(&p->official_title, jstr(root, "official_title"),
                CTGOV_TITLE_MAX) &&
        set_str(&p->sponsor_name, jstr(root, "sponsor_name"),
                CTGOV_TITLE_MAX) &&
        set_str(&p->phase, jstr(root, "phase"), 64) &&
        set_str(&p->study_type, jstr(root, "study_type"), 64) &&
        set_str(&p->start_date, jstr(root, "start_date"), 10) &&
        set_str(&p->primary_completion_date,
                jstr(root, "primary_completion_date"), 10) &&
        set_str(&p->source, "json", 8);
    if (!ok) {
        seterr(err, err_len, "out of memory");
        return -1;
    }
    p->enrollment = enrol > 0 && enrol <= UINT32_MAX ? (uint32_t)enrol : 0;
    p->start_date_actual =
        json_is_true(json_object_get(root, "start_date_actual"));
    p->primary_completion_actual =
        json_is_true(json_object_get(root, "primary_completion_actual"));
    return 0;
}

int ctgov_import_protocol(const unsigned char *bytes, size_t len,
                          bool force_ctgov, Tc__ProtocolRegister **out,
                          char *err, size_t err_len)
{
    enum record_format fmt;
    json_t *root = parse_json(bytes, len, &fmt, err, err_len);
    if (!root)
        return -1;
    int rv = -1;
    struct outcome_vec vec = {0};
    Tc__ProtocolRegister *p = protocol_new();
    if (!p) {
        seterr(err, err_len, "out of memory");
        goto out_free_json;
    }
    if (force_ctgov && fmt != RECORD_CTGOV_V2) {
        seterr(err, err_len,
               "--ctgov given but the file is not a ClinicalTrials.gov API "
               "v2 study record (no protocolSection)");
        goto out_free_json;
    }
    if (fmt == RECORD_CTGOV_V2) {
        json_t *study = v2_study(root, err, err_len);
        rv = study ? v2_protocol(study, p, err, err_len) : -1;
        if (rv == 0)
            rv = v2_outcomes(study, &vec, err, err_len);
    } else {
        rv = ours_protocol(root, p, err, err_len);
        if (rv == 0)
            rv = ours_outcomes(root, &vec, err, err_len);
    }
    if (rv == 0 && !set_hash(&p->source_record_hash, bytes, len)) {
        seterr(err, err_len, "out of memory");
        rv = -1;
    }
out_free_json:
    json_decref(root);
    if (rv != 0) {
        ctgov_outcomes_free(vec.v, vec.n);
        ctgov_protocol_free(p);
        return -1;
    }
    p->outcomes = vec.v;
    p->n_outcomes = vec.n;
    *out = p;
    return 0;
}

/* ---- results ------------------------------------------------------------- */

void ctgov_results_free(Tc__ResultsRegister *r)
{
    if (r)
        tc__results_register__free_unpacked(r, NULL);
}

static const char *match_outcome(Tc__Outcome *const *registered, size_t n,
                                 const char *measure, const char *time_frame)
{
    char m1[CTGOV_TEXT_MAX + 1], t1[CTGOV_TEXT_MAX + 1];
    char m2[CTGOV_TEXT_MAX + 1], t2[CTGOV_TEXT_MAX + 1];
    ctgov_normalize(measure, m1, sizeof(m1));
    ctgov_normalize(time_frame, t1, sizeof(t1));
    for (size_t i = 0; i < n; i++) {
        ctgov_normalize(registered[i]->measure, m2, sizeof(m2));
        ctgov_normalize(registered[i]->time_frame, t2, sizeof(t2));
        if (!strcmp(m1, m2) && !strcmp(t1, t2))
            return registered[i]->id;
    }
    return NULL;
}

/* A reported outcome counts as not pre-specified only when the report
 * declares it so (ClinicalTrials.gov type POST_HOC, or "not_prespecified":
 * true in our JSON). An undeclared outcome that matches nothing registered
 * stays an unmatched outcome, which the audit flags as added: COMPare counted
 * a change as correct only if the report declared it. */
static int results_push(Tc__ResultsRegister *r, Tc__OutcomeType type,
                        const char *measure, const char *time_frame,
                        bool declared_post_hoc, Tc__Outcome *const *registered,
                        size_t n_registered)
{
    Tc__ReportedOutcome **nv =
        realloc(r->outcomes, (r->n_outcomes + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    r->outcomes = nv;
    Tc__ReportedOutcome *o = malloc(sizeof(*o));
    if (!o)
        return -1;
    tc__reported_outcome__init(o);
    const char *id =
        match_outcome(registered, n_registered, measure, time_frame);
    o->type = type;
    o->not_prespecified = id == NULL && declared_post_hoc;
    o->outcome_id = strdup(id ? id : "");
    o->measure = dup_bounded(measure, CTGOV_TEXT_MAX);
    o->time_frame = dup_bounded(time_frame, CTGOV_TEXT_MAX);
    r->outcomes[r->n_outcomes++] = o;
    if (!o->outcome_id || !o->measure || !o->time_frame)
        return -1;
    return 0;
}

static int v2_results(json_t *study, Tc__ResultsRegister *r,
                      Tc__Outcome *const *registered, size_t n_registered,
                      char *err, size_t err_len)
{
    json_t *mod = jpath(study, "resultsSection", "outcomeMeasuresModule");
    json_t *arr = json_object_get(mod, "outcomeMeasures");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        seterr(err, err_len,
               "the ClinicalTrials.gov record has no results "
               "(resultsSection.outcomeMeasuresModule is missing); export "
               "the record after its results are posted, or use our JSON "
               "results format");
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (results_push(r, ctgov_outcome_type(jstr(m, "type")),
                         jstr(m, "title"), jstr(m, "timeFrame"),
                         !strcasecmp(jstr(m, "type"), "POST_HOC"), registered,
                         n_registered) != 0) {
            seterr(err, err_len, "out of memory");
            return -1;
        }
    }
    json_t *pcd = jpath(jpath(study, "protocolSection", "statusModule"),
                        "primaryCompletionDateStruct", NULL);
    if (!strcmp(jstr(pcd, "type"), "ACTUAL") &&
        !set_str(&r->actual_primary_completion_date, jstr(pcd, "date"), 10)) {
        seterr(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

static int ours_results(json_t *root, Tc__ResultsRegister *r,
                        Tc__Outcome *const *registered, size_t n_registered,
                        char *err, size_t err_len)
{
    json_t *arr = json_object_get(root, "outcomes");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        seterr(err, err_len,
               "no outcomes: the results file needs an \"outcomes\" list");
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (results_push(r, ctgov_outcome_type(jstr(m, "type")),
                         jstr(m, "measure"), jstr(m, "time_frame"),
                         json_is_true(json_object_get(m, "not_prespecified")),
                         registered, n_registered) != 0) {
            seterr(err, err_len, "out of memory");
            return -1;
        }
    }
    if (!set_str(&r->actual_primary_completion_date,
                 jstr(root, "actual_primary_completion_date"), 10)) {
        seterr(err, err_len, "out of memory");
        return -1;
    }
    json_t *ds = json_object_get(root, "datasets_used");
    size_t nds = json_array_size(ds);
    if (nds) {
        r->datasets_used = calloc(nds, sizeof(char *));
        if (!r->datasets_used) {
            seterr(err, err_len, "out of memory");
            return -1;
        }
        for (i = 0; i < nds; i++) {
            r->datasets_used[i] =
                dup_bounded(json_string_value(json_array_get(ds, i)), 64);
            if (!r->datasets_used[i]) {
                seterr(err, err_len, "out of memory");
                return -1;
            }
            r->n_datasets_used++;
        }
    }
    return 0;
}

int ctgov_import_results(const unsigned char *bytes, size_t len,
                         bool force_ctgov, Tc__Outcome *const *registered,
                         size_t n_registered, Tc__ResultsRegister **out,
                         char *err, size_t err_len)
{
    enum record_format fmt;
    json_t *root = parse_json(bytes, len, &fmt, err, err_len);
    if (!root)
        return -1;
    int rv = -1;
    Tc__ResultsRegister *r = calloc(1, sizeof(*r));
    if (!r) {
        seterr(err, err_len, "out of memory");
        goto out_free_json;
    }
    tc__results_register__init(r);
    r->trial_id = strdup("");
    r->actual_primary_completion_date = strdup("");
    r->source = strdup(fmt == RECORD_CTGOV_V2 ? "ctgov" : "json");
    if (!r->trial_id || !r->actual_primary_completion_date || !r->source) {
        seterr(err, err_len, "out of memory");
        goto out_free_json;
    }
    if (force_ctgov && fmt != RECORD_CTGOV_V2) {
        seterr(err, err_len,
               "--ctgov given but the file is not a ClinicalTrials.gov API "
               "v2 study record (no protocolSection)");
        goto out_free_json;
    }
    if (fmt == RECORD_CTGOV_V2) {
        json_t *study = v2_study(root, err, err_len);
        rv = study
                 ? v2_results(study, r, registered, n_registered, err, err_len)
                 : -1;
    } else {
        rv = ours_results(root, r, registered, n_registered, err, err_len);
    }
    if (rv == 0 && !set_hash(&r->results_doc_hash, bytes, len)) {
        seterr(err, err_len, "out of memory");
        rv = -1;
    }
out_free_json:
    json_decref(root);
    if (rv != 0) {
        ctgov_results_free(r);
        return -1;
    }
    *out = r;
    return 0;
}
