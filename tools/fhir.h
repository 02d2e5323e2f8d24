/*
 * fhir.h - HL7 FHIR R4 Consent resources from the ledger's consent
 * records, for sites and ethics boards whose systems speak FHIR.
 *
 * One ledger consent tx becomes one Consent:
 *   status        "active"; a recorded consent that a later withdrawal of
 *                 the same participant's participation ended is "inactive"
 *   scope         consentscope#research
 *   category      consentcategorycodes#research
 *   patient       identifier {system urn:trialchain:pseudonym:<trial>,
 *                 value <pseudonym hex>} (never a name or local id)
 *   dateTime      the block time
 *   organization  the site (member name)
 *   sourceAttachment  the consent form's SHA-256 (url urn:sha256:<hex>)
 *   policyRule    v3-ActCode#OPTIN (record) or #OPTOUT (withdrawal)
 *   provision     type permit (record) or deny (withdrawal), period start,
 *                 purpose = the DUO codes (system http://purl.obolibrary.
 *                 org/obo/duo.owl, code the DUO id, display the label)
 * Pure: no I/O.
 */
#ifndef TOOLS_FHIR_H
#define TOOLS_FHIR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FHIR_DUO_SYSTEM "http://purl.obolibrary.org/obo/duo.owl"

struct fhir_consent_in {
    const char *trial_id;
    const uint8_t *pseudonym; /* 32 bytes */
    uint32_t protocol_version;
    const uint8_t *form_hash; /* 32 bytes or NULL */
    bool withdraw;
    bool superseded; /* a later withdrawal ended this consent */
    const char *const *scopes;
    size_t n_scopes;
    uint64_t time_ms; /* block time */
    const char *site;
    const uint8_t *tx_id; /* 32 bytes: the resource id */
};

/* A Consent resource (new reference), NULL when out of memory. */
json_t *fhir_consent(const struct fhir_consent_in *c);
/* A Bundle of type collection holding the resources (steals them). */
json_t *fhir_bundle(json_t *resources);

#endif /* TOOLS_FHIR_H */
