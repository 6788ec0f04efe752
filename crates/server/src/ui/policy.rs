//! The policy pages for trust-and-safety staff and writers: each production's rating, its and
//! its characters' off-limit topics with their narrower topics, the ratings and what each
//! admits, and the likeness consent recorded for portrayed characters.

use std::sync::Arc;

use axum::extract::State;
use lore_canon::World;
use maud::{Markup, html};

use crate::auth::Role;
use crate::state::App;
use crate::ui::layout::{Page, UiCaller, layout};

fn node_name(world: &World, iri: &str) -> String {
    world
        .policy
        .node(iri)
        .map_or_else(|| iri.to_owned(), |n| n.label.clone())
}

/// Topics whose `broader` chain reaches `iri`: what a rule on it also covers.
fn narrower(world: &World, iri: &str) -> Vec<String> {
    world
        .policy
        .nodes
        .iter()
        .filter(|n| n.iri != iri && world.policy.lineage(&n.iri).contains(&iri))
        .map(|n| n.label.clone())
        .collect()
}

fn topics(world: &World, nodes: &[String]) -> Markup {
    html! {
        @if nodes.is_empty() { p { "None." } } @else {
            ul {
                @for iri in nodes {
                    @let covered = narrower(world, iri);
                    li { (node_name(world, iri))
                         @if !covered.is_empty() { " (also covers: " (covered.join(", ")) ")" } }
                }
            }
        }
    }
}

/// Policy of every production of the tenant.
pub(crate) async fn page(State(app): State<Arc<App>>, ui: UiCaller) -> Page {
    ui.require(Role::Writer)?;
    let catalog = app.catalog();
    Ok(layout(
        "Policy",
        Some(&ui.0),
        html! {
            h1 { "Policy" }
            @for served in catalog.productions(&ui.0.tenant) {
                @let world = &served.world;
                section class="card" aria-labelledby={ "policy-" (served.id) } {
                    h2 id={ "policy-" (served.id) } { (world.production.title) }
                    p { "Rating: " strong { (world.production.rating_label.as_deref().unwrap_or("none (treated as the youngest audience)")) } }
                    h3 { "Off limits in this production" }
                    (topics(world, &world.policy.production_off_limits))
                    h3 { "Off limits for its characters" }
                    @if world.policy.character_off_limits.is_empty() { p { "None." } }
                    @for (character, nodes) in &world.policy.character_off_limits {
                        @if let Some(id) = world.entity(character) {
                            h4 { (world.entities[id].name) }
                            (topics(world, nodes))
                        }
                    }
                    h3 { "Likeness consent" }
                    @if world.portrayals.is_empty() { p { "No portrayed characters." } }
                    @for portrayal in &world.portrayals {
                        h4 { (portrayal.performer_name) " as " (world.entity(&portrayal.character).map_or(portrayal.character.as_str(), |id| world.entities[id].name.as_str())) }
                        @if let Some(died) = &portrayal.performer_died { p { "Performer died " (died) "." } }
                        @if portrayal.consents.is_empty() { p class="error" { "No consent recorded: every session is refused." } }
                        table {
                            thead { tr { th scope="col" { "Record" } th scope="col" { "Uses" } th scope="col" { "Productions" }
                                         th scope="col" { "Territories" } th scope="col" { "Valid until" } th scope="col" { "Posthumous" } } }
                            tbody {
                                @for c in &portrayal.consents {
                                    tr {
                                        td { code { (c.iri) } }
                                        td { (c.uses.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")) }
                                        td { (c.productions.join(", ")) }
                                        td { @if c.territories.is_empty() { "anywhere" } @else { (c.territories.join(", ")) } }
                                        td { (c.expires.as_deref().unwrap_or("no end")) }
                                        td { @if c.posthumous { "allowed" } @else { "not allowed" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(first) = catalog.productions(&ui.0.tenant).next() {
                h2 { "Ratings" }
                table {
                    thead { tr { th scope="col" { "Rating" } th scope="col" { "Minimum age" } th scope="col" { "Topics it does not admit" } } }
                    tbody {
                        @for rating in &first.world.policy.ratings {
                            tr {
                                td { (rating.label) }
                                td { (rating.minimum_age) }
                                td { (below(&first.world, rating.minimum_age).join(", ")) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// Topics whose minimum rating is above an audience of `age`.
fn below(world: &World, age: i64) -> Vec<String> {
    world
        .policy
        .nodes
        .iter()
        .filter(|n| {
            n.minimum_rating
                .as_deref()
                .and_then(|r| world.policy.rating(r))
                .is_some_and(|r| r.minimum_age > age)
        })
        .map(|n| n.label.clone())
        .collect()
}
