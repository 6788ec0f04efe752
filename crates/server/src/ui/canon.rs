//! The canon browser: a production's characters, places and other entities with search, and an
//! entity's page: persona, facts over story time, relationships drawn as a graph, and the
//! productions that share it.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use lore_canon::{EntityId, EntityKind, Span, World};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use crate::auth::Role;
use crate::catalog::{Served, local_id};
use crate::error::ApiError;
use crate::state::App;
use crate::ui::layout::{Page, UiCaller, UiError, layout};

/// The tenant's productions.
pub(crate) async fn productions(State(app): State<Arc<App>>, ui: UiCaller) -> Page {
    ui.require(Role::Writer)?;
    let catalog = app.catalog();
    Ok(layout(
        "Canon",
        Some(&ui.0),
        html! {
            h1 { "Canon" }
            ul {
                @for served in catalog.productions(&ui.0.tenant) {
                    li { a href={ "/ui/canon/" (served.id) } { (served.world.production.title) }
                         " — " (served.world.entities.len()) " entities, " (served.world.facts.len()) " facts" }
                }
            }
        },
    ))
}

fn served(app: &App, ui: &UiCaller, production: &str) -> Result<Arc<Served>, UiError> {
    ui.require(Role::Writer)?;
    Ok(app.catalog().production(&ui.0.tenant, production)?)
}

fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Character => "Characters",
        EntityKind::Place => "Places",
        EntityKind::Object => "Objects",
        EntityKind::Faction => "Factions",
        EntityKind::Event => "Events",
        EntityKind::Concept => "Concepts",
    }
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// Whether entity `id` matches `needle` by name, alias, persona or a fact about it.
fn matches(world: &World, id: EntityId, needle: &str) -> bool {
    let e = &world.entities[id];
    let has = |text: &str| text.to_lowercase().contains(needle);
    has(&e.name)
        || e.aliases.iter().any(|a| has(a))
        || e.persona.as_deref().is_some_and(has)
        || world
            .facts
            .iter()
            .any(|f| f.about.contains(&id) && has(&f.statement))
}

/// A production's entities by kind, filtered by a search.
pub(crate) async fn production(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Path(production): Path<String>,
    Query(search): Query<SearchQuery>,
) -> Page {
    let served = served(&app, &ui, &production)?;
    let world = &served.world;
    let needle = search.q.as_deref().unwrap_or("").trim().to_lowercase();
    let mut kinds: Vec<(&str, Vec<EntityId>)> = Vec::new();
    for (id, e) in world.entities.iter().enumerate() {
        if !needle.is_empty() && !matches(world, id, &needle) {
            continue;
        }
        let kind = kind_name(e.kind);
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, ids)) => ids.push(id),
            None => kinds.push((kind, vec![id])),
        }
    }
    Ok(layout(
        &world.production.title,
        Some(&ui.0),
        html! {
            h1 { (world.production.title) }
            @if let Some(premise) = &world.production.premise { p { (premise) } }
            form method="get" role="search" {
                label for="q" { "Search names, personas and facts" }
                input id="q" name="q" type="search" value=(search.q.as_deref().unwrap_or(""));
                button type="submit" { "Search" }
            }
            @if kinds.is_empty() { p { "Nothing matches." } }
            @for (kind, ids) in &kinds {
                h2 { (kind) }
                ul {
                    @for id in ids {
                        @let e = &world.entities[*id];
                        li { a href={ "/ui/canon/" (served.id) "/" (local_id(&e.iri)) } { (e.name) } }
                    }
                }
            }
        },
    ))
}

fn span_text(world: &World, span: Span) -> String {
    let beat = |order: i64| {
        world.beats.iter().find(|b| b.order == order).map_or_else(
            || format!("beat {order}"),
            |b| format!("{} ({order})", b.name),
        )
    };
    match (span.from, span.until) {
        (None, None) => "always".to_owned(),
        (Some(f), None) => format!("from {}", beat(f)),
        (None, Some(u)) => format!("until {}", beat(u)),
        (Some(f), Some(u)) => format!("from {} until {}", beat(f), beat(u)),
    }
}

/// An entity's page.
pub(crate) async fn entity(
    State(app): State<Arc<App>>,
    ui: UiCaller,
    Path((production, name)): Path<(String, String)>,
) -> Page {
    let served = served(&app, &ui, &production)?;
    let world = &served.world;
    let id = world
        .entities
        .iter()
        .position(|e| local_id(&e.iri) == name)
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_entity",
                format!("no entity '{name}' in {}", served.id),
            )
        })?;
    let e = &world.entities[id];
    let facts: Vec<_> = world
        .facts
        .iter()
        .filter(|f| f.about.contains(&id))
        .collect();
    let relationships: Vec<_> = world
        .relationships
        .iter()
        .filter(|r| r.source == id || r.target == id)
        .collect();
    let shared: Vec<Arc<Served>> = app
        .catalog()
        .productions(&ui.0.tenant)
        .filter(|s| s.world.entity(&e.iri).is_some())
        .cloned()
        .collect();
    let link = |other: EntityId| {
        let o = &world.entities[other];
        html! { a href={ "/ui/canon/" (served.id) "/" (local_id(&o.iri)) } { (o.name) } }
    };
    Ok(layout(
        &e.name,
        Some(&ui.0),
        html! {
            p { a href={ "/ui/canon/" (served.id) } { (world.production.title) } }
            h1 { (e.name) }
            p { span class="badge" { (kind_name(e.kind)) } @if !e.aliases.is_empty() { " also: " (e.aliases.join(", ")) } }
            @if let Some(persona) = &e.persona { h2 { "Persona" } p class="persona" { (persona) } }
            @if let Some(style) = &e.speech_style { p { strong { "Speech: " } (style) } }
            @if !e.goals.is_empty() { p { strong { "Goals: " } (e.goals.join("; ")) } }
            h2 { "Appears in" }
            ul { @for s in &shared { li { a href={ "/ui/canon/" (s.id) "/" (name) } { (s.world.production.title) } } } }
            h2 { "Facts over story time" }
            @if facts.is_empty() { p { "No facts about it." } } @else {
                table {
                    thead { tr { th scope="col" { "Fact" } th scope="col" { "Holds" } th scope="col" { "Known by" } } }
                    tbody {
                        @for f in &facts {
                            tr {
                                td { (f.statement) @if f.secret { " " span class="badge blocked" { "secret" } } }
                                td { (span_text(world, f.span)) }
                                td {
                                    @if f.common { "everyone" } @else {
                                        @for (i, (who, _)) in f.knowers.iter().enumerate() {
                                            @if i > 0 { ", " } (link(*who))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Relationships" }
            @if relationships.is_empty() { p { "None in canon." } } @else {
                (graph(world, id, &relationships))
                ul {
                    @for r in &relationships {
                        li { (link(r.source)) " → " (r.kind) " → " (link(r.target))
                             " (" (span_text(world, r.span)) ")"
                             @if let Some(d) = &r.description { " — " (d) } }
                    }
                }
            }
        },
    ))
}

/// The relationships around `center` as an SVG: the entity in the middle, the others on a
/// circle, an arrow per relationship labelled with its kind.
fn graph(world: &World, center: EntityId, relationships: &[&lore_canon::Relationship]) -> Markup {
    let mut others: Vec<EntityId> = relationships
        .iter()
        .map(|r| {
            if r.source == center {
                r.target
            } else {
                r.source
            }
        })
        .collect();
    others.sort_unstable();
    others.dedup();
    let (width, height, radius) = (640.0, 360.0, 140.0);
    let (cx, cy) = (width / 2.0, height / 2.0);
    let place = |id: EntityId| -> (f64, f64) {
        match others.iter().position(|&o| o == id) {
            None => (cx, cy),
            Some(i) => {
                let angle = std::f64::consts::TAU * i as f64 / others.len() as f64;
                (cx + radius * 1.6 * angle.cos(), cy + radius * angle.sin())
            }
        }
    };
    let mut svg = String::new();
    for r in relationships {
        let ((x1, y1), (x2, y2)) = (place(r.source), place(r.target));
        let _ = write!(
            svg,
            r##"<line x1="{x1:.0}" y1="{y1:.0}" x2="{x2:.0}" y2="{y2:.0}" stroke="#7a8794" stroke-width="2" marker-end="url(#arrow)"/><text x="{:.0}" y="{:.0}" font-size="12" fill="#444">{}</text>"##,
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 4.0,
            maud::html! { (r.kind) }.into_string()
        );
    }
    for id in std::iter::once(center).chain(others.iter().copied()) {
        let (x, y) = place(id);
        let fill = if id == center { "#23303f" } else { "#e8eef5" };
        let ink = if id == center { "#fff" } else { "#1b1b1b" };
        let _ = write!(
            svg,
            r##"<circle cx="{x:.0}" cy="{y:.0}" r="34" fill="{fill}" stroke="#23303f"/><text x="{x:.0}" y="{:.0}" font-size="12" text-anchor="middle" fill="{ink}">{}</text>"##,
            y + 4.0,
            maud::html! { (world.entities[id].name) }.into_string()
        );
    }
    html! {
        svg role="img" aria-label={ "Relationships of " (world.entities[center].name) } viewBox={ "0 0 " (width) " " (height) } width="100%" class="graph" {
            defs { marker id="arrow" viewBox="0 0 10 10" refX="44" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse" {
                path d="M 0 0 L 10 5 L 0 10 z" fill="#7a8794" {} } }
            (PreEscaped(svg))
        }
    }
}
