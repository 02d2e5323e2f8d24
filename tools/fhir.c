/*
 * fhir.c - FHIR R4 Consent resources (see fhir.h).
 */
#include "fhir.h"

#include "duo.h"
#include "lg.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static json_t *coding(const char *system, const char *code, const char *display)
{
    json_t *c = json_pack("{s:s, s:s}", "system", system, "code", code);
    if (c && display)
        json_object_set_new(c, "display", json_string(display));
    return c;
}

static json_t *concept(json_t *one_coding)
{
    return json_pack("{s:[o]}", "coding", one_coding);
}

static void fmt_time(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* provision.purpose: one Coding per DUO scope (PARTICIPATION is the
 * consent itself, not a data-use purpose). */
static json_t *purposes(const struct fhir_consent_in *c)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < c->n_scopes; i++) {
        const char *s = c->scopes[i];
        if (!strcmp(s, DUO_PARTICIPATION))
            continue;
        char base[DUO_SCOPE_MAX + 1];
        snprintf(base, sizeof(base), "%s", s);
        /* "DS:MONDO:0005148" is the DS term restricted to a disease */
        char *colon = strchr(base, ':');
        if (colon)
            *colon = '\0';
        const struct duo_term *t = duo_lookup(base);
        json_t *cd = t ? coding(FHIR_DUO_SYSTEM, t->id, t->label)
                       : coding("urn:trialchain:scope", s, NULL);
        if (cd && t && colon)
            json_object_set_new(cd, "display",
                                json_sprintf("%s: %s", t->label, colon + 1));
        json_array_append_new(arr, cd);
    }
    return arr;
}

json_t *fhir_consent(const struct fhir_consent_in *c)
{
    char id[65], pseudo[65], when[32], sys[160], form[80] = "";
    lg_hex(c->tx_id, 32, id);
    lg_hex(c->pseudonym, 32, pseudo);
    fmt_time(c->time_ms, when);
    snprintf(sys, sizeof(sys), "urn:trialchain:pseudonym:%s", c->trial_id);
    if (c->form_hash) {
        char hex[65];
        lg_hex(c->form_hash, 32, hex);
        snprintf(form, sizeof(form), "urn:sha256:%s", hex);
    }
    const char *status = c->superseded ? "inactive" : "active";
    json_t *div = json_sprintf(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>%s of participant "
        "%.16s&#8230; in trial %s, protocol version %u, at site %s, %s.</p>"
        "</div>",
        c->withdraw ? "Withdrawal of consent" : "Research consent", pseudo,
        c->trial_id, c->protocol_version, c->site, when);
    json_t *prov = json_pack("{s:s, s:{s:s}, s:o}", "type",
                             c->withdraw ? "deny" : "permit", "period", "start",
                             when, "purpose", purposes(c));
    json_t *r = json_pack(
        "{s:s, s:s, s:{s:s, s:o}, s:s, s:o, s:[o], s:{s:{s:s, s:s}},"
        " s:s, s:[{s:s, s:{s:s, s:s}}], s:{s:s, s:s}, s:o, s:o}",
        "resourceType", "Consent", "id", id, "text", "status", "generated",
        "div", div, "status", status, "scope",
        concept(coding("http://terminology.hl7.org/CodeSystem/consentscope",
                       "research", "Research")),
        "category",
        concept(coding("http://terminology.hl7.org/CodeSystem/"
                       "consentcategorycodes",
                       "research", "Research Information Access")),
        "patient", "identifier", "system", sys, "value", pseudo, "dateTime",
        when, "organization", "display", c->site, "identifier", "system",
        "urn:trialchain:member", "value", c->site, "sourceAttachment", "title",
        c->withdraw ? "withdrawal" : "consent form", "url",
        *form ? form : "urn:sha256:unknown", "policyRule",
        concept(coding("http://terminology.hl7.org/CodeSystem/v3-ActCode",
                       c->withdraw ? "OPTOUT" : "OPTIN", NULL)),
        "provision", prov);
    if (r && !*form)
        json_object_del(r, "sourceAttachment");
    return r;
}

json_t *fhir_bundle(json_t *resources)
{
    json_t *entries = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(resources, i, r)
    {
        const char *rid = json_string_value(json_object_get(r, "id"));
        json_array_append_new(entries,
                              json_pack("{s:s+, s:O}", "fullUrl",
                                        "urn:trialchain:tx:", rid ? rid : "",
                                        "resource", r));
    }
    size_t n = json_array_size(resources);
    json_decref(resources);
    return json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                     "collection", "total", (json_int_t)n, "entry", entries);
}
