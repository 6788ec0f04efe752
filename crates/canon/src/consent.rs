//! Likeness consent: what a performer agreed to, and whether a request falls inside it.
//!
//! A character with a `lore:Portrayal` speaks with a real person's likeness. Each of the
//! portrayal's `lore:LikenessConsent` records grants some uses (text, voice, image) in some
//! productions and territories until a date, and says whether use after the performer's death
//! is allowed. A request is allowed when one record covers all of it; otherwise it is refused
//! with the record that came closest and what it lacks, so legal staff can see why.

use std::fmt;

/// A use of a performer's likeness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LikenessUse {
    /// Written lines in the character's voice.
    Text,
    /// Synthesised or recorded speech.
    Voice,
    /// Pictures or video of the character.
    Image,
}

impl LikenessUse {
    /// Every use, in the order the vocabulary lists them.
    pub const ALL: [LikenessUse; 3] = [LikenessUse::Text, LikenessUse::Voice, LikenessUse::Image];

    /// The lowercase name used on the wire and in flags.
    pub fn name(self) -> &'static str {
        match self {
            LikenessUse::Text => "text",
            LikenessUse::Voice => "voice",
            LikenessUse::Image => "image",
        }
    }

    /// Reads a wire name (`text`, `voice`, `image`).
    pub fn parse(name: &str) -> Option<LikenessUse> {
        LikenessUse::ALL
            .into_iter()
            .find(|u| u.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for LikenessUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `lore:LikenessConsent` record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LikenessConsent {
    /// Its IRI: what a refusal cites.
    pub iri: String,
    /// The uses it grants.
    pub uses: Vec<LikenessUse>,
    /// IRIs of the productions it covers.
    pub productions: Vec<String>,
    /// ISO 3166-1 alpha-2 codes, or `WORLD`.
    pub territories: Vec<String>,
    /// The last day it is valid, `YYYY-MM-DD` (no limit when `None`).
    pub expires: Option<String>,
    /// Whether it holds after the performer's death.
    pub posthumous: bool,
}

/// A character played by a real person, with what that person consented to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Portrayal {
    /// Its IRI.
    pub iri: String,
    /// The character's IRI.
    pub character: String,
    /// The performer's IRI.
    pub performer: String,
    /// The performer's name, for messages to legal staff (never for prompts).
    pub performer_name: String,
    /// The performer's date of death (`schema:deathDate`), `YYYY-MM-DD`.
    pub performer_died: Option<String>,
    /// The consent records; none means no use at all is agreed.
    pub consents: Vec<LikenessConsent>,
}

/// What a session asks to do with a character's likeness.
#[derive(Debug, Clone, PartialEq)]
pub struct LikenessRequest {
    /// The uses the client will make of the replies.
    pub uses: Vec<LikenessUse>,
    /// The production's IRI.
    pub production: String,
    /// Where the audience is (ISO 3166-1 alpha-2), when the client says.
    pub territory: Option<String>,
    /// The day of the request, `YYYY-MM-DD`.
    pub date: String,
}

/// Why a request falls outside a portrayal's consent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{performer}'s likeness consent does not cover this: {reason} (consent record {cited})")]
pub struct ConsentRefusal {
    /// The performer's name.
    pub performer: String,
    /// The consent record that came closest, or the portrayal when it has none.
    pub cited: String,
    /// What the record lacks.
    pub reason: String,
}

impl Portrayal {
    /// Whether one consent record covers all of `request`; the refusal cites the record that
    /// failed on the fewest counts.
    pub fn permits(&self, request: &LikenessRequest) -> Result<&LikenessConsent, ConsentRefusal> {
        let mut closest: Option<(usize, &LikenessConsent, Vec<String>)> = None;
        for consent in &self.consents {
            let gaps = self.gaps(consent, request);
            if gaps.is_empty() {
                return Ok(consent);
            }
            if closest.as_ref().is_none_or(|(n, _, _)| gaps.len() < *n) {
                closest = Some((gaps.len(), consent, gaps));
            }
        }
        Err(match closest {
            Some((_, consent, gaps)) => ConsentRefusal {
                performer: self.performer_name.clone(),
                cited: consent.iri.clone(),
                reason: gaps.join("; "),
            },
            None => ConsentRefusal {
                performer: self.performer_name.clone(),
                cited: self.iri.clone(),
                reason: "the portrayal records no consent".into(),
            },
        })
    }

    fn gaps(&self, consent: &LikenessConsent, request: &LikenessRequest) -> Vec<String> {
        let mut gaps = Vec::new();
        let missing: Vec<&str> = request
            .uses
            .iter()
            .filter(|u| !consent.uses.contains(u))
            .map(|u| u.name())
            .collect();
        if !missing.is_empty() {
            gaps.push(format!("{} use is not granted", missing.join(" and ")));
        }
        if !consent.productions.contains(&request.production) {
            gaps.push(format!("production {} is not covered", request.production));
        }
        if !consent.territories.iter().any(|t| t == "WORLD") {
            match &request.territory {
                Some(t)
                    if consent
                        .territories
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(t)) => {}
                Some(t) => gaps.push(format!(
                    "territory {t} is not covered (only {})",
                    consent.territories.join(", ")
                )),
                None => gaps.push(format!(
                    "the audience's territory was not given and consent covers only {}",
                    consent.territories.join(", ")
                )),
            }
        }
        if let Some(expires) = &consent.expires
            && request.date.as_str() > expires.as_str()
        {
            gaps.push(format!("it expired on {expires}"));
        }
        if let Some(died) = &self.performer_died
            && !consent.posthumous
            && request.date.as_str() >= died.as_str()
        {
            gaps.push(format!(
                "the performer died on {died} and posthumous use is not allowed"
            ));
        }
        gaps
    }
}

/// Whether `text` is an ISO 8601 calendar date `YYYY-MM-DD` with a real month and day.
pub fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match (number(y, 4), number(m, 2), number(d, 2)) {
        (Some(y), Some(m @ 1..=12), Some(d)) => d >= 1 && d <= days_in_month(y, m),
        _ => false,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    date_of_day(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// The civil date of a day counted from 1970-01-01 (Hinnant's `civil_from_days`).
fn date_of_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portrayal() -> Portrayal {
        Portrayal {
            iri: "w:odile-portrayal".into(),
            character: "w:odile".into(),
            performer: "w:june".into(),
            performer_name: "June Halloway".into(),
            performer_died: None,
            consents: vec![LikenessConsent {
                iri: "w:june-consent".into(),
                uses: vec![LikenessUse::Text, LikenessUse::Voice],
                productions: vec!["w:lanterns".into()],
                territories: vec!["GB".into(), "IE".into()],
                expires: Some("2031-12-31".into()),
                posthumous: false,
            }],
        }
    }

    fn request(uses: &[LikenessUse], territory: Option<&str>, date: &str) -> LikenessRequest {
        LikenessRequest {
            uses: uses.to_vec(),
            production: "w:lanterns".into(),
            territory: territory.map(str::to_owned),
            date: date.into(),
        }
    }

    #[test]
    fn a_request_inside_the_record_is_permitted() {
        let ok = request(&[LikenessUse::Text], Some("gb"), "2026-11-22");
        assert_eq!(portrayal().permits(&ok).unwrap().iri, "w:june-consent");
    }

    #[test]
    fn each_gap_is_named_and_the_record_cited() {
        let p = portrayal();
        let image = p
            .permits(&request(&[LikenessUse::Image], Some("GB"), "2026-11-22"))
            .unwrap_err();
        assert_eq!(image.cited, "w:june-consent");
        assert!(image.reason.contains("image use"), "{image}");
        let abroad = p
            .permits(&request(&[LikenessUse::Text], Some("US"), "2026-11-22"))
            .unwrap_err();
        assert!(abroad.reason.contains("territory US"), "{abroad}");
        let unknown = p
            .permits(&request(&[LikenessUse::Text], None, "2026-11-22"))
            .unwrap_err();
        assert!(unknown.reason.contains("not given"), "{unknown}");
        let late = p
            .permits(&request(&[LikenessUse::Text], Some("GB"), "2032-01-01"))
            .unwrap_err();
        assert!(late.reason.contains("expired on 2031-12-31"), "{late}");
        let mut other = request(&[LikenessUse::Text], Some("GB"), "2026-11-22");
        other.production = "w:nocturne".into();
        assert!(p.permits(&other).unwrap_err().reason.contains("w:nocturne"));
    }

    #[test]
    fn posthumous_use_needs_the_flag() {
        let mut p = portrayal();
        p.performer_died = Some("2028-03-01".into());
        let before = request(&[LikenessUse::Text], Some("GB"), "2028-02-28");
        let after = request(&[LikenessUse::Text], Some("GB"), "2028-03-01");
        assert!(p.permits(&before).is_ok());
        assert!(p.permits(&after).unwrap_err().reason.contains("posthumous"));
        p.consents[0].posthumous = true;
        assert!(p.permits(&after).is_ok());
    }

    #[test]
    fn no_record_means_no_use() {
        let mut p = portrayal();
        p.consents.clear();
        let refused = p
            .permits(&request(&[LikenessUse::Text], Some("GB"), "2026-11-22"))
            .unwrap_err();
        assert_eq!(refused.cited, "w:odile-portrayal");
    }

    #[test]
    fn dates() {
        assert!(is_date("2031-12-31"));
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2031-13-01"));
        assert!(!is_date("31-12-2031"));
        assert!(!is_date("2031-12-31T00:00:00"));
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_779), "2026-11-22");
        assert_eq!(date_of_day(11_016), "2000-02-29");
    }
}
