//! The catalog: a tenant's productions and characters, and trying a line on a character's
//! rails.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use crate::auth::{Caller, Role};
use crate::catalog::{Served, characters, local_id};
use crate::error::{ApiError, ApiJson};
use crate::state::App;
use crate::wire::{CharacterOut, ErrorBody, ProductionOut, RailKind, RailsCheckIn, RailsCheckOut};

type AppState = State<Arc<App>>;

fn production_out(served: &Served) -> ProductionOut {
    let p = &served.world.production;
    ProductionOut {
        id: served.id.clone(),
        iri: p.iri.clone(),
        title: p.title.clone(),
        rating: p.rating_label.clone(),
        premise: p.premise.clone(),
        characters: characters(&served.world).count(),
    }
}

fn character_out(served: &Served, entity: &lore_canon::Entity) -> CharacterOut {
    let id = local_id(&entity.iri).to_owned();
    CharacterOut {
        model: format!("{}/{id}", served.id),
        id,
        iri: entity.iri.clone(),
        name: entity.name.clone(),
        aliases: entity.aliases.clone(),
        persona: entity.persona.clone(),
    }
}

/// Lists the productions of the caller's tenant.
#[utoipa::path(get, path = "/v1/productions", tag = "catalog",
    responses((status = 200, body = [ProductionOut]), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_productions(State(app): AppState, caller: Caller) -> Json<Vec<ProductionOut>> {
    Json(
        app.catalog()
            .productions(&caller.tenant)
            .map(|s| production_out(s))
            .collect(),
    )
}

/// One production of the caller's tenant.
#[utoipa::path(get, path = "/v1/productions/{production}", tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title")),
    responses((status = 200, body = ProductionOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_production(
    State(app): AppState,
    caller: Caller,
    Path(production): Path<String>,
) -> Result<Json<ProductionOut>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    Ok(Json(production_out(&served)))
}

/// The characters of a production.
#[utoipa::path(get, path = "/v1/productions/{production}/characters", tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title")),
    responses((status = 200, body = [CharacterOut]), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_characters(
    State(app): AppState,
    caller: Caller,
    Path(production): Path<String>,
) -> Result<Json<Vec<CharacterOut>>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    Ok(Json(
        characters(&served.world)
            .map(|(_, e)| character_out(&served, e))
            .collect(),
    ))
}

/// One character of a production.
#[utoipa::path(get, path = "/v1/productions/{production}/characters/{character}",
    tag = "catalog",
    params(("production" = String, Path, description = "Production id, IRI or title"),
           ("character" = String, Path, description = "Character id, IRI, name or alias")),
    responses((status = 200, body = CharacterOut), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_character(
    State(app): AppState,
    caller: Caller,
    Path((production, character)): Path<(String, String)>,
) -> Result<Json<CharacterOut>, ApiError> {
    let served = app.catalog().production(&caller.tenant, &production)?;
    let resolved = app.catalog().resolve(&served, &character, None)?;
    Ok(Json(character_out(
        &served,
        &served.world.entities[resolved.character],
    )))
}

/// Tries a line on a character's rails, for trust-and-safety staff and writers checking the
/// policy: what the input rail would decide on it as a player's line, or the output rail on it
/// as a sentence of the character's reply (the policy and the canon check at the story time).
/// Nothing is generated, stored or logged for audit.
#[utoipa::path(post, path = "/v1/productions/{production}/characters/{character}/rails",
    tag = "rails",
    params(("production" = String, Path, description = "Production id, IRI or title"),
           ("character" = String, Path, description = "Character id, IRI, name or alias")),
    request_body = RailsCheckIn,
    responses((status = 200, body = RailsCheckOut), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn try_rails(
    State(app): AppState,
    caller: Caller,
    Path((production, character)): Path<(String, String)>,
    ApiJson(body): ApiJson<RailsCheckIn>,
) -> Result<Json<RailsCheckOut>, ApiError> {
    // Players may not probe the policy for what slips past it.
    caller.require(Role::Writer)?;
    let served = app.catalog().production(&caller.tenant, &production)?;
    let resolved = app
        .catalog()
        .resolve(&served, &character, body.at.as_deref())?;
    // Building the rails (the first time a character is met) and the embedding layer are CPU
    // work.
    tokio::task::spawn_blocking(move || {
        let planner = app
            .catalog()
            .planner(&served, resolved)
            .map_err(ApiError::from_engine)?;
        let out = match body.rail {
            RailKind::Input => RailsCheckOut::input(
                &planner
                    .try_input(&body.text)
                    .map_err(ApiError::from_engine)?,
            ),
            RailKind::Output => RailsCheckOut::output(
                &planner
                    .check_sentence(&body.text)
                    .map_err(ApiError::from_engine)?,
            ),
        };
        Ok(Json(out))
    })
    .await
    .map_err(|e| ApiError::internal(format!("rails thread: {e}")))?
}
