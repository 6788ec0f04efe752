//! The JSON the API speaks. Engine types never go on the wire directly: these are the
//! contract, documented in `/openapi.json`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A production the caller's tenant owns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductionOut {
    /// Short id used in URLs and model names.
    pub id: String,
    /// Its IRI in canon.
    pub iri: String,
    /// Its title.
    pub title: String,
    /// Its audience rating.
    pub rating: Option<String>,
    /// What it is about.
    pub premise: Option<String>,
    /// How many characters it has.
    pub characters: usize,
}

/// A character of a production.
#[derive(Debug, Serialize, ToSchema)]
pub struct CharacterOut {
    /// Short id used in URLs and model names.
    pub id: String,
    /// Its IRI in canon.
    pub iri: String,
    /// Its name.
    pub name: String,
    /// Other names players may use.
    pub aliases: Vec<String>,
    /// Who it is.
    pub persona: Option<String>,
    /// The OpenAI-compatible model id that talks to it.
    pub model: String,
}

/// Opens a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Production id, IRI or title.
    pub production: String,
    /// Character id, IRI, name or alias.
    pub character: String,
    /// The integrator's id for the player.
    pub player: String,
    /// Story time: a beat's number or name; absent means timeless.
    #[serde(default)]
    pub at: Option<String>,
    /// What the replies will be used as, for the performer's likeness consent: `text`
    /// (always), `voice` (spoken), `image` (shown with the character's likeness).
    #[serde(default)]
    pub uses: Vec<String>,
    /// Where the audience is (ISO 3166-1 alpha-2), for likeness consent limited to
    /// territories.
    #[serde(default)]
    pub territory: Option<String>,
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Its id.
    pub id: String,
    /// The player's id.
    pub player: String,
    /// The production's id.
    pub production: String,
    /// The character's id.
    pub character: String,
    /// Story time as given.
    pub at: Option<String>,
    /// Story time as a beat number.
    pub beat: Option<i64>,
    /// What the replies are used as (likeness consent).
    pub uses: Vec<String>,
    /// The audience's territory, when given.
    pub territory: Option<String>,
    /// Completed turns.
    pub turns: i64,
    /// Facts in the session's own graph.
    pub memory_facts: i64,
    /// Created at (Unix ms).
    pub created_ms: i64,
    /// Last turn at (Unix ms).
    pub updated_ms: i64,
}

/// One recorded turn.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptTurn {
    /// Its index, from 0.
    pub turn: i64,
    /// What the player said.
    pub input: String,
    /// The character's reply.
    pub reply: String,
    /// IRIs of the facts the reply was grounded in.
    pub facts_used: Vec<String>,
    /// Recorded at (Unix ms).
    pub created_ms: i64,
}

/// One fact of the session's own graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryOut {
    /// Its IRI.
    pub iri: String,
    /// `said`, `name` or `event`.
    pub kind: String,
    /// The sentence.
    pub text: String,
    /// The transcript line it came from.
    pub line: i64,
    /// IRIs of the canon entities it names.
    pub entities: Vec<String>,
}

/// A session with its transcript and memory.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    /// The session.
    pub session: SessionOut,
    /// Every turn, in order.
    pub transcript: Vec<TranscriptTurn>,
    /// The session's graph.
    pub memory: Vec<MemoryOut>,
}

/// A player's line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnIn {
    /// What the player says.
    pub input: String,
    /// Stream the reply as Server-Sent Events (also chosen by `Accept: text/event-stream`).
    #[serde(default)]
    pub stream: bool,
}

/// Token counts of a turn.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens evaluated this turn (the rest were reused from the session's cache).
    pub evaluated_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// Where a turn's time went, in milliseconds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timing {
    /// Waiting for a generation slot.
    pub queue_ms: f64,
    /// Retrieval and prompt assembly.
    pub plan_ms: f64,
    /// From the start of generation to the first token.
    pub first_token_ms: f64,
    /// Generation as a whole.
    pub generate_ms: f64,
    /// Recording the turn durably.
    pub commit_ms: f64,
}

/// One policy node that fired on a turn.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RailOut {
    /// Which rail: `input` (the player's line) or `output` (the reply).
    pub rail: String,
    /// `deflect`, `refuse` or `end_session`: what the rails did about the whole line.
    pub action: String,
    /// The policy node's IRI.
    pub node: String,
    /// The node's name.
    pub label: String,
    /// Why it is off limits here: `hazard`, `studio`, `production`, `character` or `rating`.
    pub rule: String,
    /// The node the rule is stated on (the hazard, the off-limits node, or the rating).
    pub rule_node: String,
    /// The layer that fired it: `lexicon`, `similarity`, `topic` or `head`.
    pub layer: String,
    /// The term found, or the policy example the text is nearest to.
    pub term: String,
    /// The reading it was found in: `folded`, `leetspeak`, `spaced`, `base64`, `rot13`.
    pub view: String,
    /// How sure the layer is, 0..1.
    pub score: f32,
}

impl RailOut {
    /// The wire form of `decision`'s nodes.
    pub fn from_decision(rail: &str, decision: &lore_guard::Decision) -> Vec<RailOut> {
        decision
            .fired
            .iter()
            .map(|f| {
                let (rule, rule_node) = match &f.rule {
                    lore_guard::Rule::Hazard(n) => ("hazard", n),
                    lore_guard::Rule::Studio(n) => ("studio", n),
                    lore_guard::Rule::Production(n) => ("production", n),
                    lore_guard::Rule::Character(n) => ("character", n),
                    lore_guard::Rule::Rating(n) => ("rating", n),
                };
                RailOut {
                    rail: rail.to_owned(),
                    action: decision.action.name().to_owned(),
                    node: f.node.clone(),
                    label: f.label.clone(),
                    rule: rule.to_owned(),
                    rule_node: rule_node.clone(),
                    layer: f.layer.name().to_owned(),
                    term: f.term.clone(),
                    view: f.view.name().to_owned(),
                    score: f.score,
                }
            })
            .collect()
    }
}

/// Which rail a line is tried on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RailKind {
    /// The input rail: the text as a player's line.
    #[default]
    Input,
    /// The output rail: the text as a sentence of the character's reply.
    Output,
}

/// A line trust-and-safety staff or writers try on a character's rails: nothing is generated,
/// stored or logged for audit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RailsCheckIn {
    /// The text to judge.
    pub text: String,
    /// `input` (the default: a player's line) or `output` (a sentence of the reply).
    #[serde(default)]
    pub rail: RailKind,
    /// Story time: a beat's number or name (default: timeless, every fact holds). The output
    /// rail checks the sentence against canon as it stands then.
    #[serde(default)]
    pub at: Option<String>,
}

/// What the rails decide on a line tried with [`RailsCheckIn`].
#[derive(Debug, Serialize, ToSchema)]
pub struct RailsCheckOut {
    /// `input` or `output`.
    pub rail: String,
    /// The input rail: `allow`, `deflect`, `refuse` or `end_session`. The output rail: `allow`,
    /// or `withhold` when the sentence would not be sent.
    pub action: String,
    /// The policy nodes that fired, most severe first.
    pub fired: Vec<RailOut>,
    /// The output rail's findings against canon: a secret leaked, or a claim canon contradicts
    /// at the story time (empty on the input rail).
    pub canon: Vec<CanonFindingOut>,
}

/// One finding of the output rail's canon check, as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanonFindingOut {
    /// `leak`, `dead_as_alive`, `wrong_relationship`, `stale_fact` or `unknown_place`.
    pub kind: String,
    /// The canon node it cites: for a leak, the secret fact.
    pub node: String,
    /// The words that gave it away.
    pub evidence: String,
    /// How sure, 0..1.
    pub score: f32,
}

impl RailsCheckOut {
    /// The input rail's `decision`.
    pub fn input(decision: &lore_guard::Decision) -> RailsCheckOut {
        RailsCheckOut {
            rail: "input".into(),
            action: decision.action.name().into(),
            fired: RailOut::from_decision("input", decision),
            canon: Vec::new(),
        }
    }

    /// The output rail's `verdict` on one sentence.
    pub fn output(verdict: &lore_engine::SentenceVerdict) -> RailsCheckOut {
        RailsCheckOut {
            rail: "output".into(),
            action: if verdict.passes() {
                "allow"
            } else {
                "withhold"
            }
            .into(),
            fired: RailOut::from_decision("output", &verdict.policy),
            canon: verdict
                .canon
                .iter()
                .map(|finding| CanonFindingOut {
                    kind: finding.problem.kind().into(),
                    node: finding.problem.node().into(),
                    evidence: finding.evidence.clone(),
                    score: finding.score,
                })
                .collect(),
        }
    }
}

/// A finished turn: the final SSE event, or the non-streaming response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TurnOut {
    /// The session.
    pub session: String,
    /// The turn's index, from 0.
    pub turn: i64,
    /// The whole reply.
    pub reply: String,
    /// IRIs of the canon facts and session memories the reply is grounded in.
    pub facts_used: Vec<String>,
    /// The input rail's decisions on this turn, each citing the policy node that fired (empty
    /// when nothing did).
    pub rails: Vec<RailOut>,
    /// What the output rail withheld from the reply and how it was repaired.
    pub output_rail: OutputRailOut,
    /// The reply's signed provenance record: `payload` (the record's JSON text: engine,
    /// model and its hash, sampling, watermark, canon revision, prompt hash, session, time,
    /// `c2pa.created`, the IPTC digital source type), `alg` (`Ed25519`), `key_id` (one of
    /// `GET /v1/provenance/keys`) and `signature` (base64, over the payload's bytes).
    #[schema(value_type = Option<Object>)]
    pub provenance: Option<lore_mark::SignedRecord>,
    /// Why the reply ended: `stop`, `end_of_turn` or `length`, or `rails` when the input rail
    /// answered instead of the model.
    pub finish_reason: String,
    /// Token counts.
    pub usage: Usage,
    /// Where the time went.
    pub timing: Timing,
}

/// What the output rail did to a reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct OutputRailOut {
    /// `none`, `truncated` (the reply ends before the withheld sentence), `regenerated` or
    /// `fallback` (the character deflected).
    pub repair: String,
    /// The problems of the withheld sentences (never the sentences).
    pub withheld: Vec<WithheldOut>,
}

/// One problem of a withheld sentence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithheldOut {
    /// `policy`, `leak`, `dead_as_alive`, `wrong_relationship`, `stale_fact` or
    /// `unknown_place`.
    pub kind: String,
    /// The policy or canon node it cites. Absent on the wire for a leak, whose fact would give
    /// the secret away; kept in the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How sure, 0..1.
    pub score: f32,
}

impl OutputRailOut {
    /// The report as the audit record keeps it (`audit`), or as a player may see it.
    pub fn from_report(report: &lore_engine::OutputReport, audit: bool) -> OutputRailOut {
        let mut withheld = Vec::new();
        for verdict in &report.withheld {
            for fired in &verdict.policy.fired {
                withheld.push(WithheldOut {
                    kind: "policy".into(),
                    node: Some(fired.node.clone()),
                    score: fired.score,
                });
            }
            for finding in &verdict.canon {
                let leak = matches!(finding.problem, lore_guard::Problem::Leak { .. });
                withheld.push(WithheldOut {
                    kind: finding.problem.kind().into(),
                    node: (audit || !leak).then(|| finding.problem.node().to_owned()),
                    score: finding.score,
                });
            }
        }
        OutputRailOut {
            repair: report.repair.name().into(),
            withheld,
        }
    }
}

/// An API key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Public id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// `player`, `writer` or `admin`.
    pub role: String,
    /// A note for people.
    pub label: String,
    /// Created at (Unix ms).
    pub created_ms: i64,
    /// Expires at (Unix ms).
    pub expires_ms: Option<i64>,
    /// Revoked at (Unix ms).
    pub revoked_ms: Option<i64>,
}

/// Makes a key for the caller's tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `player`, `writer` or `admin`.
    pub role: String,
    /// A note for people.
    #[serde(default)]
    pub label: String,
    /// Days until it expires; absent: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// `lk_<id>_<secret>`.
    pub key: String,
    /// The stored key.
    #[serde(flatten)]
    pub info: KeyOut,
}

/// Every error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code, e.g. `unknown_session`, `invalid_json`, `busy`.
    pub code: String,
    /// Message for people.
    pub message: String,
}

/// A fact a step rests on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvidenceOut {
    /// The IRI of the fact, relationship, entity or session fact.
    pub iri: String,
    /// What it establishes.
    pub says: String,
}

/// One step of a quest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepOut {
    /// The verb (`goto`, `give`, ...).
    pub action: String,
    /// The entities, by IRI, in the verb's order.
    pub targets: Vec<String>,
    /// The step in words.
    pub text: String,
    /// Why it could be done when planned.
    pub proof: Vec<EvidenceOut>,
}

/// The model's words around a quest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WriteUpOut {
    /// Title.
    pub title: String,
    /// How the giver puts it.
    pub hook: String,
    /// The giver's lines.
    pub lines: Vec<String>,
    /// `model` (decoded under the write-up's JSON schema) or `plan` (the plan's own words).
    pub written_by: String,
    /// Its signed provenance record (artefact `quest`), over the SHA-256 of
    /// `{"title","hook","lines"}` as compact JSON; absent when the server does not sign.
    #[schema(value_type = Option<Object>)]
    pub provenance: Option<serde_json::Value>,
}

/// A quest of the session: the plan (the truth), its write-up and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuestOut {
    /// Its number in the session.
    pub id: usize,
    /// The giver's IRI.
    pub giver: String,
    /// Why the giver wants it (knowledge, comfort, reputation, serenity, protection,
    /// conquest, wealth, ability, equipment).
    pub motivation: String,
    /// How (`"spy on a rival"`).
    pub strategy: String,
    /// How it is mostly played (combat, talk, stealth, exploration).
    pub style: String,
    /// `offered`, `refused`, `running`, `completed` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Steps done, in order.
    pub done: usize,
    /// The steps.
    pub steps: Vec<StepOut>,
    /// The failed quest this one replaces.
    pub replaces: Option<usize>,
    /// Its write-up.
    pub write_up: Option<WriteUpOut>,
}

/// A session's quests and what the player chose.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestsOut {
    /// Every quest offered, by id.
    pub quests: Vec<QuestOut>,
    /// How many game events were recorded.
    pub events: usize,
    /// Character IRI → regard for the player (0 neutral; completed quests raise it, refused
    /// ones lower it).
    pub regard: std::collections::BTreeMap<String, f64>,
}

/// Something the player did in the game: `{"action": "give", "targets": ["the Everlight",
/// "Odile"]}`. Entities by IRI, name or alias.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GameEventIn {
    /// The verb: goto, get, take, give, deliver, escort, listen, report, spy, use, repair,
    /// defend or capture.
    pub action: String,
    /// Its entities, in the verb's order (give: item, receiver).
    pub targets: Vec<String>,
}

/// What a session's client is told happened (on `GET /v1/sessions/{id}/events` and in the
/// answers of the quest routes).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionEventOut {
    /// Its number in the session: resume a stream after it with `?after=`.
    pub seq: i64,
    /// `event_recorded`, `quest_offered`, `quest_accepted`, `quest_refused`, `step_done`,
    /// `step_out_of_order`, `quest_completed`, `quest_failed` or `regard_changed`.
    pub kind: String,
    /// The quest it concerns.
    pub quest: Option<usize>,
    /// The step it concerns.
    pub step: Option<usize>,
    /// Why (a failure's reason).
    pub reason: Option<String>,
    /// The session fact that records it, which characters recall.
    pub fact: Option<String>,
    /// The same in words.
    pub text: String,
    /// When it was recorded.
    pub created_ms: i64,
}

/// The answer to a quest route: the quest and what was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestChangeOut {
    /// The quest asked about (absent for a game event).
    pub quest: Option<QuestOut>,
    /// What was recorded, in order (a replacement quest offered after a failure among them).
    pub events: Vec<SessionEventOut>,
}

/// A commit of canon.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitOut {
    /// SHA-256 (hex) over the commit and its change.
    pub id: String,
    /// 1 for the first commit, one more for each after it.
    pub sequence: u64,
    /// The commit before it.
    pub parent: Option<String>,
    /// The commit its author saw, when others committed in between.
    pub based_on: Option<String>,
    /// Who made it (a writer key's id, `import`, a user of the CLI).
    pub author: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Why.
    pub message: String,
    /// The signed provenance record of generated material it brought in (JSON text).
    pub provenance: Option<String>,
    /// The commits it reverts.
    pub reverts: Vec<String>,
    /// Quads it added (in every graph).
    pub added: usize,
    /// Quads it removed (in every graph).
    pub removed: usize,
    /// The graphs it changed that this tenant reads.
    pub graphs: Vec<String>,
}

/// A change of canon as N-Quads statements.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    /// Statements added.
    pub added: Vec<String>,
    /// Statements removed.
    pub removed: Vec<String>,
}

/// A commit and what it changed in this tenant's graphs.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitDetail {
    /// The commit.
    pub commit: CommitOut,
    /// Its change, in the graphs this tenant reads.
    pub change: ChangeOut,
}

/// An edit of canon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCommit {
    /// The commit the edit was made against (`GET /v1/canon/commits` lists them; `root`
    /// before the first). When others committed since, the edit is refused if it touches
    /// what they changed.
    pub base: String,
    /// Why.
    pub message: String,
    /// N-Quads statements to add, each in one of the tenant's graphs.
    #[serde(default)]
    pub add: Vec<String>,
    /// N-Quads statements to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Where a proposal came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProposalSource {
    /// The session that learned it.
    pub session: Option<String>,
    /// The session fact it drafts (its IRI in the session's graph).
    pub fact: Option<String>,
    /// The transcript around it: the player's line and the reply.
    pub excerpt: Vec<String>,
    /// The model that spoke in that session, or generated the material.
    pub model: Option<String>,
    /// The signed provenance record of the reply it came from (JSON text).
    pub provenance: Option<String>,
    /// Who proposed it (`key <id>`).
    pub proposed_by: String,
}

/// A proposal for canon.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalOut {
    /// `p_<hex>`.
    pub id: String,
    /// The production's id.
    pub production: String,
    /// `session_fact`, `character` (drafted by the model) or `import`.
    pub kind: String,
    /// One line for the queue.
    pub summary: String,
    /// `pending`, `deferred`, `accepted` or `rejected`.
    pub status: String,
    /// Where it came from.
    pub source: ProposalSource,
    /// What it would change (as accepted, once accepted).
    pub change: ChangeOut,
    /// The commit of canon it was drafted against.
    pub base: String,
    /// Whether the rails refuse its text: it cannot be accepted unless edited.
    pub rails_blocked: bool,
    /// The policy nodes that fired on its text.
    pub rails: Vec<RailOut>,
    /// Why it was rejected or deferred.
    pub reason: Option<String>,
    /// Who decided.
    pub reviewer: Option<String>,
    /// The commit that made it canon.
    pub commit: Option<String>,
    /// When it was proposed.
    pub created_ms: i64,
    /// When it was decided.
    pub decided_ms: Option<i64>,
}

/// Material for canon a writer brings (an import awaiting approval).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    /// The production (id, IRI or title) it is for.
    pub production: String,
    /// One line for the queue.
    pub summary: String,
    /// N-Quads statements it would add.
    #[serde(default)]
    pub add: Vec<String>,
    /// N-Quads statements it would remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A character for the model to draft, for review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftCharacterIn {
    /// The production (id, IRI or title) it is for.
    pub production: String,
    /// What the writers want: a role, a temperament, a tie to the story.
    pub brief: String,
    /// Varies the draft (default 0).
    #[serde(default)]
    pub seed: u64,
}

/// A session fact to propose for canon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeFact {
    /// The fact's IRI in the session's graph (`memory[].iri` of `GET /v1/sessions/{id}`).
    pub fact: String,
    /// One line for the queue (default: the fact's sentence).
    pub summary: Option<String>,
}

/// Accepting a proposal, optionally edited.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptIn {
    /// The commit message (default: the proposal's summary).
    pub message: Option<String>,
    /// The writer's edit: these statements replace what the proposal adds.
    pub add: Option<Vec<String>>,
    /// The writer's edit: these statements replace what the proposal removes.
    pub remove: Option<Vec<String>>,
}

/// Rejecting or deferring a proposal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// Why (required to reject).
    pub reason: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    /// Its id.
    pub id: String,
    /// Who (`key <id>`).
    pub actor: String,
    /// `proposal_created`, `proposal_accepted`, `proposal_rejected`, `proposal_deferred`,
    /// `canon_commit` or `canon_revert`.
    pub action: String,
    /// A proposal or commit id.
    pub target: String,
    /// Details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    pub created_ms: i64,
}
