//! Every reply is watermarked and signed; `/v1/verify` and `/v1/provenance/keys` let anyone
//! with a key check both, and every tampering is named.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::*;
use lore_server::Role;
use serde_json::json;

#[test]
fn replies_carry_signed_provenance_that_verifies_and_tampering_is_named() {
    let canon = canon();
    let mut options = Options::new(sqlite_url(canon.dir.path()), embedded());
    options.max_tokens = 48;
    let server = start(&canon, options);
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "ada");
    let turn = post(
        &format!("{}/v1/sessions/{id}/turns", server.url),
        Some(&key),
        &json!({ "input": "Tell me about the river, love." }),
    );
    assert_eq!(turn.status, 200, "{}", turn.body);
    let turn = turn.json();
    let reply = turn["reply"].as_str().unwrap().to_owned();
    let provenance = turn["provenance"].clone();
    assert_eq!(provenance["alg"], "Ed25519");
    let record: serde_json::Value =
        serde_json::from_str(provenance["payload"].as_str().unwrap()).unwrap();
    assert_eq!(record["session"], id.as_str());
    assert_eq!(record["action"], "c2pa.created");
    assert_eq!(record["backend"], "embedded");
    assert_eq!(record["model_sha256"].as_str().unwrap().len(), 64);
    assert!(
        record["digital_source_type"]
            .as_str()
            .unwrap()
            .ends_with("trainedAlgorithmicMedia")
    );
    assert_eq!(record["watermark"]["gamma"], 0.25);
    assert!(!record["canon_revision"].as_str().unwrap().is_empty());

    // The published key is the one that signed.
    let keys = get(&format!("{}/v1/provenance/keys", server.url), Some(&key)).json();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == provenance["key_id"])
    );

    let verify = |text: &str, provenance: &serde_json::Value| {
        let r = post(
            &format!("{}/v1/verify", server.url),
            Some(&key),
            &json!({ "text": text, "provenance": provenance }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let genuine = verify(&reply, &provenance);
    assert_eq!(genuine["provenance"]["valid"], true, "{genuine}");
    assert_eq!(genuine["provenance"]["record"]["session"], id.as_str());
    assert!(genuine["watermark"]["tokens_scored"].as_u64().unwrap() > 0);

    let edited = verify(&format!("{reply} And one more thing."), &provenance);
    assert_eq!(edited["provenance"]["valid"], false);
    assert!(
        edited["provenance"]["reason"]
            .as_str()
            .unwrap()
            .contains("other content")
    );

    let mut forged = provenance.clone();
    forged["payload"] = json!(
        forged["payload"]
            .as_str()
            .unwrap()
            .replace("embedded", "openai")
    );
    let forged = verify(&reply, &forged);
    assert!(
        forged["provenance"]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{forged}"
    );

    let mut stranger = provenance.clone();
    stranger["key_id"] = json!("sig-ffffffffffff");
    let stranger = verify(&reply, &stranger);
    assert!(
        stranger["provenance"]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown key")
    );

    // Human text: no watermark, and a tiny text is called too short rather than judged.
    let human = verify(
        "It was a bright cold day in April, and the clocks were striking thirteen. Winston \
         Smith, his chin nuzzled into his breast in an effort to escape the vile wind, slipped \
         quickly through the glass doors of Victory Mansions, though not quickly enough to \
         prevent a swirl of gritty dust from entering along with him.",
        &serde_json::Value::Null,
    );
    assert_eq!(human["watermark"]["watermarked"], false, "{human}");
    assert!(human["provenance"].is_null());
    let tiny = verify("Aye.", &serde_json::Value::Null);
    assert!(
        tiny["watermark"]["verdict"]
            .as_str()
            .unwrap()
            .contains("too short")
    );

    // The session exported: text, sidecar and the reply's own record inside it.
    let export = get(
        &format!("{}/v1/sessions/{id}/export?format=replies", server.url),
        Some(&key),
    );
    assert_eq!(export.status, 200, "{}", export.body);
    let export = export.json();
    assert_eq!(export["text"], reply.trim());
    assert_eq!(export["media_type"], "text/plain");
    assert_eq!(export["provenance"]["parts"][0], provenance);
    assert_eq!(export["provenance"]["record"]["artefact"], "export");
    let sidecar = export["c2pa"].as_str().unwrap();
    let check = |text: &str, c2pa: &str| {
        let r = post(
            &format!("{}/v1/verify", server.url),
            Some(&key),
            &json!({ "text": text, "c2pa": c2pa }),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let genuine = check(export["text"].as_str().unwrap(), sidecar);
    assert_eq!(genuine["sidecar"]["valid"], true, "{genuine}");
    assert_eq!(
        genuine["sidecar"]["provenance"]["record"]["session"],
        id.as_str()
    );
    let altered = check(
        &format!("{} Or so they say.", export["text"].as_str().unwrap()),
        sidecar,
    );
    assert_eq!(
        altered["sidecar"]["failures"][0],
        "assertion.dataHash.mismatch"
    );
    let truncated = check(
        export["text"].as_str().unwrap(),
        &sidecar[..sidecar.len() / 8 * 4],
    );
    assert_eq!(truncated["sidecar"]["valid"], false);
    let not_base64 = post(
        &format!("{}/v1/verify", server.url),
        Some(&key),
        &json!({ "text": "x", "c2pa": "%%%" }),
    );
    assert_eq!(not_base64.status, 400);
    assert!(
        not_base64.body.contains("c2pa: not base64"),
        "{}",
        not_base64.body
    );
    let unknown_format = get(
        &format!("{}/v1/sessions/{id}/export?format=pdf", server.url),
        Some(&key),
    );
    assert_eq!(unknown_format.status, 400, "{}", unknown_format.body);

    // A malformed request is named, not guessed at.
    let bad = post(
        &format!("{}/v1/verify", server.url),
        Some(&key),
        &json!({ "txt": "x" }),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    server.stop();
}
