//! The review queue and canon's history: decide proposals, read the log and diffs, revert.
//! Every action goes through the same code as the API ([`crate::proposals`],
//! [`crate::commits`]), so it checks the same roles and tenants.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::Role;
use crate::commits;
use crate::error::ApiError;
use crate::proposals::{self, ListQuery};
use crate::state::App;
use crate::ui::layout::{Page, UiCaller, UiError, change_lines, layout};
use crate::wire::{AcceptIn, DecisionIn, DraftCharacterIn};

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    status: Option<String>,
    done: Option<String>,
}

/// Open proposals (or those with `?status=`), each with its source, change, rails and the
/// forms to decide it.
pub(crate) async fn queue(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Query(query): Query<QueueQuery>,
) -> Page {
    ui.require(Role::Writer)?;
    let statuses: Vec<&str> = match query.status.as_deref() {
        Some(status) => vec![status],
        None => vec!["pending", "deferred"],
    };
    let mut proposals = Vec::new();
    for status in statuses {
        let listed =
            proposals::list_proposals(app.clone(), ui.0.clone(), ListQuery::status(status)).await?;
        proposals.extend(listed);
    }
    Ok(layout(
        "Review",
        Some(&ui.0),
        html! {
            h1 { "Review queue" }
            @if let Some(done) = &query.done { p role="status" class="notice" { (done) } }
            nav aria-label="Proposals by status" {
                a href="/ui/review" { "Open" } " · "
                a href="/ui/review?status=accepted" { "Accepted" } " · "
                a href="/ui/review?status=rejected" { "Rejected" }
            }
            form method="post" action="/ui/review/draft" class="card" {
                h2 { "Ask the model for a character" }
                label for="draft-production" { "Production" }
                select id="draft-production" name="production" required {
                    @for served in app.catalog().productions(&ui.0.tenant) {
                        option value=(served.id) { (served.world.production.title) }
                    }
                }
                label for="brief" { "What the writers want" }
                input id="brief" name="brief" type="text" required maxlength="1000" size="60";
                div { button type="submit" { "Draft a character for review" } }
            }
            @if proposals.is_empty() { p { "Nothing waiting." } }
            @for p in &proposals {
                article class="card proposal" aria-labelledby={ "title-" (p.id) } {
                    h2 id={ "title-" (p.id) } { (p.summary) }
                    p { span class="badge" { (p.status) } " " (p.kind) " for " (p.production) " · " code { (p.id) }
                        @if let Some(c) = &p.commit { " · commit " a href={ "/ui/history/" (c) } { code { (&c[..12.min(c.len())]) } } }
                        @if let Some(r) = &p.reason { " · " (r) } }
                    @if let Some(session) = &p.source.session {
                        p { "From session " code { (session) } @if let Some(m) = &p.source.model { " (model " (m) ")" } }
                        @if !p.source.excerpt.is_empty() {
                            blockquote { @for line in &p.source.excerpt { p { (line) } } }
                        }
                    }
                    h3 { "What it would change" }
                    (change_lines(&p.change))
                    @if p.rails_blocked {
                        p class="error" { "The rails refuse this text: "
                            @for (i, r) in p.rails.iter().enumerate() { @if i > 0 { ", " } (r.label) }
                            ". Edit it before accepting." }
                    } @else {
                        p { span class="badge ok" { "rails: allowed" } }
                    }
                    @if p.status == "pending" || p.status == "deferred" {
                        form method="post" action={ "/ui/review/" (p.id) "/accept" } {
                            label for={ "add-" (p.id) } { "Statements to add (N-Quads, one per line; edit before accepting)" }
                            textarea id={ "add-" (p.id) } name="add" rows="4" { (p.change.added.join("\n")) }
                            label for={ "message-" (p.id) } { "Commit message" }
                            input id={ "message-" (p.id) } name="message" type="text" value={ "Accept: " (p.summary) } size="60";
                            div { button type="submit" { "Accept" } }
                        }
                        form method="post" action={ "/ui/review/" (p.id) "/reject" } {
                            label for={ "reason-" (p.id) } { "Reason to reject" }
                            input id={ "reason-" (p.id) } name="reason" type="text" required size="60";
                            button type="submit" { "Reject" }
                        }
                        form method="post" action={ "/ui/review/" (p.id) "/defer" } {
                            button type="submit" { "Defer" }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct DraftForm {
    production: String,
    brief: String,
}

/// Has the model draft a character; the draft joins the queue.
pub(crate) async fn draft(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Form(form): Form<DraftForm>,
) -> Result<Response, UiError> {
    let request = DraftCharacterIn {
        production: form.production,
        brief: form.brief,
        seed: 0,
    };
    let drafted = proposals::draft_character(app, ui.0, request).await?;
    let done = format!("Drafted for review: {}", drafted.summary);
    Ok(Redirect::to(&format!("/ui/review?done={}", urlencode(&done))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    add: Option<String>,
    message: Option<String>,
    reason: Option<String>,
}

/// Accepts (with the edited statements), rejects or defers a proposal.
pub(crate) async fn decide(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, UiError> {
    let caller = ui.0.clone();
    let done = match decision.as_str() {
        "accept" => {
            let add = form.add.map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
            let accepted = proposals::accept(
                app,
                caller,
                id.clone(),
                AcceptIn {
                    message: form.message.filter(|m| !m.trim().is_empty()),
                    add,
                    remove: None,
                },
            )
            .await?;
            format!(
                "Accepted {id} as commit {}.",
                accepted.commit.as_deref().unwrap_or("?")
            )
        }
        "reject" | "defer" => {
            let body = DecisionIn {
                reason: form.reason,
            };
            let decided = if decision == "reject" {
                proposals::reject(app, caller, id.clone(), body).await?
            } else {
                proposals::defer(app, caller, id.clone(), body).await?
            };
            format!("{id} is now {}.", decided.status)
        }
        other => {
            return Err(
                ApiError::not_found("unknown_decision", format!("no decision '{other}'")).into(),
            );
        }
    };
    Ok(Redirect::to(&format!("/ui/review?done={}", urlencode(&done))).into_response())
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    done: Option<String>,
}

/// Canon's log as the tenant sees it, with a form to diff two commits.
pub(crate) async fn history(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Query(query): Query<HistoryQuery>,
) -> Page {
    ui.require(Role::Writer)?;
    let log = commits::list_commits(app.clone(), ui.0.clone(), None).await?;
    Ok(layout(
        "History",
        Some(&ui.0),
        html! {
            h1 { "History of canon" }
            @if let Some(done) = &query.done { p role="status" class="notice" { (done) } }
            form method="get" action="/ui/history/diff" class="card" {
                label for="from" { "Compare from commit (or root)" }
                input id="from" name="from" type="text" required value="root";
                label for="to" { "to commit" }
                input id="to" name="to" type="text" required value="head";
                button type="submit" { "Show the difference" }
            }
            table {
                thead { tr { th scope="col" { "Commit" } th scope="col" { "Author" } th scope="col" { "When" }
                             th scope="col" { "Message" } th scope="col" { "Change" } } }
                tbody {
                    @for c in &log {
                        tr {
                            td { a href={ "/ui/history/" (c.id) } { code { (&c.id[..12]) } } }
                            td { (c.author) }
                            td { (c.time) }
                            td { (c.message) }
                            td { span class="added" { "+" (c.added) } " " span class="removed" { "−" (c.removed) } }
                        }
                    }
                }
            }
        },
    ))
}

/// One commit: what it changed, and the form to revert it.
pub(crate) async fn commit(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Path(rev): Path<String>,
) -> Page {
    ui.require(Role::Writer)?;
    let detail = commits::get_commit(app.clone(), ui.0.clone(), rev).await?;
    let c = &detail.commit;
    Ok(layout(
        &format!("Commit {}", &c.id[..12]),
        Some(&ui.0),
        html! {
            h1 { "Commit " code { (&c.id[..12]) } }
            p { (c.message) }
            p { "By " (c.author) " at " (c.time) " · #" (c.sequence)
                @if let Some(b) = &c.based_on { " · made against " code { (&b[..12.min(b.len())]) } }
                @for r in &c.reverts { " · reverts " a href={ "/ui/history/" (r) } { code { (&r[..12.min(r.len())]) } } } }
            @if c.provenance.is_some() { p { span class="badge" { "generated material, with a signed provenance record" } } }
            h2 { "Change" }
            (change_lines(&detail.change))
            form method="post" action={ "/ui/history/" (c.id) "/revert" } class="card" {
                div {
                    input id="with_dependents" name="with_dependents" type="checkbox" value="true";
                    label for="with_dependents" style="display:inline" { " Also revert later commits that changed the same triples" }
                }
                button type="submit" { "Revert this commit" }
            }
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct RevertForm {
    with_dependents: Option<String>,
}

/// Reverts a commit.
pub(crate) async fn revert(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Path(rev): Path<String>,
    Form(form): Form<RevertForm>,
) -> Result<Response, UiError> {
    let commit = commits::revert(app, ui.0, rev, form.with_dependents.is_some()).await?;
    let done = format!("Committed {}: {}", &commit.id[..12], commit.message);
    Ok(Redirect::to(&format!("/ui/history?done={}", urlencode(&done))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct DiffQuery {
    from: String,
    to: String,
}

/// The difference between two commits.
pub(crate) async fn diff(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Query(query): Query<DiffQuery>,
) -> Page {
    ui.require(Role::Writer)?;
    let title = format!("From {} to {}", query.from, query.to);
    let change = commits::diff(app, ui.0.clone(), query.from, query.to).await?;
    Ok(layout(
        "Difference",
        Some(&ui.0),
        html! {
            h1 { (title) }
            (change_lines(&change))
            p { a href="/ui/history" { "Back to the history" } }
        },
    ))
}
