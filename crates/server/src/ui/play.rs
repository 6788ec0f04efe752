//! The playground: open a session with a character, talk, and see for each reply the facts it
//! stood on, what the rails decided, its signed provenance and its watermark verdict.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::catalog::{characters, local_id};
use crate::db::TurnRow;
use crate::sessions::{open_session, visible_session};
use crate::state::App;
use crate::turn::{self, finish};
use crate::ui::layout::{Page, UiCaller, UiError, layout};
use crate::verifier::{VerifyIn, VerifyOut};
use crate::wire::{CreateSession, OutputRailOut, RailOut};

/// The form that opens a session.
pub(crate) async fn start_page(State(app): State<Arc<App>>, UiCaller(caller): UiCaller) -> Markup {
    let catalog = app.catalog();
    layout(
        "Playground",
        Some(&caller),
        html! {
            h1 { "Playground" }
            form method="post" action="/ui/play" class="card" {
                label for="model" { "Character" }
                select id="model" name="model" required {
                    @for served in catalog.productions(&caller.tenant) {
                        optgroup label=(served.world.production.title) {
                            @for (_, e) in characters(&served.world) {
                                option value={ (served.id) "/" (local_id(&e.iri)) } { (e.name) }
                            }
                        }
                    }
                }
                label for="at" { "Story time (beat number or name; empty: timeless)" }
                input id="at" name="at" type="text";
                label for="player" { "Player name" }
                input id="player" name="player" type="text" value="playground" required;
                div { button type="submit" { "Start talking" } }
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct StartForm {
    model: String,
    at: String,
    player: String,
}

/// Opens a session as the API does.
pub(crate) async fn start(
    State(app): State<Arc<App>>,
    UiCaller(caller): UiCaller,
    Form(form): Form<StartForm>,
) -> Result<Response, UiError> {
    let (production, character) = form
        .model
        .split_once('/')
        .ok_or_else(|| crate::error::ApiError::invalid("pick a character"))?;
    let request = CreateSession {
        production: production.to_owned(),
        character: character.to_owned(),
        player: form.player,
        at: Some(form.at.trim().to_owned()).filter(|a| !a.is_empty()),
        uses: Vec::new(),
        territory: None,
    };
    let created = open_session(&app, &caller, &request, None).await?;
    Ok(Redirect::to(&format!("/ui/play/{}", created.id)).into_response())
}

/// Turns one page shows: each is verified (signature and watermark) as the page is drawn.
const TURNS_PER_PAGE: i64 = 20;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// The first turn shown; by default the page ends with the newest.
    from: Option<i64>,
}

/// A session's conversation, each reply with what it stood on.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    UiCaller(caller): UiCaller,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Page {
    let session = visible_session(&app, &caller, &id).await?;
    let from = query
        .from
        .unwrap_or(session.turns - TURNS_PER_PAGE)
        .clamp(0, session.turns.max(0));
    let served = app
        .catalog()
        .production_by_iri(&session.tenant, &session.production);
    let world = served.as_ref().map(|s| s.world.clone());
    let speaker = world
        .as_ref()
        .and_then(|w| {
            w.entity(&session.character)
                .map(|e| w.entities[e].name.clone())
        })
        .unwrap_or_else(|| session.character.clone());
    let mut turns = Vec::new();
    for turn in app
        .db
        .sessions
        .turns(&id, from..from + TURNS_PER_PAGE)
        .await?
    {
        let verdict = verified(&app, &turn).await;
        turns.push((turn, verdict));
    }
    let statement = |iri: &str| {
        world
            .as_ref()
            .and_then(|w| w.facts.iter().find(|f| f.iri == iri))
            .map(|f| f.statement.clone())
    };
    Ok(layout(
        &format!("Talking to {speaker}"),
        Some(&caller),
        html! {
            h1 { "Talking to " (speaker) }
            p { "Session " code { (id) } " · player " (session.player)
                @if let Some(at) = &session.at { " · beat " (at) } }
            @if from > 0 {
                p { a href={ "/ui/play/" (id) "?from=" ((from - TURNS_PER_PAGE).max(0)) } { "Earlier turns" }
                    " (" (from) " before these)" }
            }
            @for (turn, verdict) in &turns {
                section class="turn" id={ "turn-" (turn.turn) } aria-label={ "Turn " (turn.turn + 1) } {
                    p class="player" { (session.player) ": " (turn.input) }
                    p class="reply" { (speaker) ": " (turn.reply) }
                    details {
                        summary { "Facts used (" (facts_count(&turn.facts_used)) ")" }
                        ul {
                            @for iri in serde_json::from_str::<Vec<String>>(&turn.facts_used).unwrap_or_default() {
                                li { code { (iri) } @if let Some(s) = statement(&iri) { " — " (s) } }
                            }
                        }
                    }
                    details {
                        summary { "Rails" }
                        (rails(&turn.rails, &turn.output_rail))
                    }
                    @if let Some(v) = verdict {
                        details {
                            summary { "Provenance and watermark" }
                            (authenticity(v))
                        }
                    }
                }
            }
            @if from + TURNS_PER_PAGE < session.turns {
                p { a href={ "/ui/play/" (id) } { "Newest turns" } }
            }
            form method="post" action={ "/ui/play/" (id) } class="card" {
                label for="input" { "Say to " (speaker) }
                textarea id="input" name="input" rows="2" required maxlength="4096" {}
                div { button type="submit" { "Say" } }
            }
        },
    ))
}

/// What the server's verifier says of a stored turn's reply (its signature and watermark);
/// `None` when it cannot say (no tokenizer to read watermarks with).
async fn verified(app: &Arc<App>, turn: &TurnRow) -> Option<VerifyOut> {
    let provenance: Option<lore_mark::SignedRecord> = turn
        .provenance
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let request = VerifyIn {
        text: turn.reply.clone(),
        provenance,
        c2pa: None,
    };
    let verifying = app.clone();
    tokio::task::spawn_blocking(move || verifying.verifier.check(request))
        .await
        .ok()
        .and_then(Result::ok)
}

/// A reply's signature and watermark verdicts.
fn authenticity(v: &VerifyOut) -> Markup {
    html! {
        @if let Some(p) = &v.provenance {
            p { span class={ "badge " @if p.valid { "ok" } @else { "blocked" } } {
                @if p.valid { "signature valid" } @else { "signature invalid" } }
                " " (p.reason) }
            @if let Some(record) = &p.record {
                p { "Model " code { (record.model) } " · canon commit " code { (record.canon_revision) }
                    " · " (record.digital_source_type) }
            }
        } @else {
            p { "No provenance record." }
        }
        p class="watermark" {
            span class={ "badge " @if v.watermark.watermarked { "ok" } @else { "blocked" } } {
                @if v.watermark.watermarked { "watermarked" } @else { "not shown to be watermarked" } }
            " " (v.watermark.verdict) " (z = " (format!("{:.2}", v.watermark.z)) " over " (v.watermark.tokens_scored) " tokens)"
        }
    }
}

fn facts_count(facts_used: &str) -> usize {
    serde_json::from_str::<Vec<String>>(facts_used).map_or(0, |f| f.len())
}

fn rails(input: &str, output: &str) -> Markup {
    let input: Vec<RailOut> = serde_json::from_str(input).unwrap_or_default();
    let output: OutputRailOut = serde_json::from_str(output).unwrap_or_default();
    html! {
        @if input.is_empty() {
            p { "Input rail: allowed." }
        } @else {
            ul { @for r in &input {
                li { "Input rail " strong { (r.action) } ": " (r.label) " (" (r.rule) ", " (r.layer)
                     ", score " (format!("{:.2}", r.score)) ")" }
            } }
        }
        p { "Output rail: " @if output.withheld.is_empty() { "nothing withheld." }
            @else { (output.withheld.len()) " sentence(s) withheld, repair: " (output.repair) "." } }
    }
}

#[derive(Deserialize)]
pub(crate) struct SayForm {
    input: String,
}

/// Runs a turn, then shows the conversation again.
pub(crate) async fn say(
    State(app): State<Arc<App>>,
    UiCaller(caller): UiCaller,
    Path(id): Path<String>,
    Form(form): Form<SayForm>,
) -> Result<Response, UiError> {
    let events = turn::start(&app, &caller, &id, form.input).await?;
    let turn = finish(events).await?;
    Ok(Redirect::to(&format!("/ui/play/{id}#turn-{}", turn.turn)).into_response())
}
