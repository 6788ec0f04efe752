//! What the server serves: each tenant's productions, loaded once, and turn planners shared by
//! every session of the same character at the same story time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lore_canon::{CanonError, CanonStore, EntityKind, Resolved, World, productions};
use lore_engine::{EngineError, SessionOptions, TurnPlanner};

use crate::error::ApiError;

/// One production as served.
pub struct Served {
    /// Its short id in URLs and model names: the IRI's local name.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its canon.
    pub world: Arc<World>,
}

/// The short id of an IRI: what follows its last `#` or `/`.
pub fn local_id(iri: &str) -> &str {
    iri.rsplit(['#', '/']).next().unwrap_or(iri)
}

type PlannerKey = (String, usize, Option<i64>);

/// Every served production, by tenant, as of one commit of canon.
pub struct Catalog {
    served: Vec<Arc<Served>>,
    planners: Mutex<HashMap<PlannerKey, Arc<TurnPlanner>>>,
    options: SessionOptions,
    cache: PathBuf,
    /// The commit of canon it was loaded from.
    pub revision: String,
}

impl Catalog {
    /// Loads every production that names a tenant (through the world snapshot cache).
    pub fn load(
        store: &CanonStore,
        cache: &Path,
        options: SessionOptions,
    ) -> Result<Catalog, CanonError> {
        let revision = store.revision()?;
        let mut served = Vec::new();
        for production in productions(store)? {
            let Some(tenant) = production.tenant.clone() else {
                tracing::warn!(
                    production = %production.iri,
                    "production has no lore:tenant; no key can see it"
                );
                continue;
            };
            let world = World::load_cached(store, &production.iri, cache)?;
            // Embeds the policy's examples and trains its topic heads now, while loading,
            // rather than inside the first turn that needs them (seconds on a small machine).
            if let Some(semantic) = &options.semantic
                && let Err(e) = lore_guard::Rails::for_production(&world, Some(semantic))
            {
                tracing::warn!(production = %production.iri, error = %e, "warming the rails");
            }
            served.push(Arc::new(Served {
                id: local_id(&production.iri).to_owned(),
                tenant,
                world: Arc::new(world),
            }));
        }
        Ok(Catalog {
            served,
            planners: Mutex::new(HashMap::new()),
            options,
            cache: cache.to_owned(),
            revision,
        })
    }

    /// The catalog of canon as it is now in `store`, with the same settings.
    pub fn reload(&self, store: &CanonStore) -> Result<Catalog, CanonError> {
        Catalog::load(store, &self.cache, self.options.clone())
    }

    /// The graphs a writer of `tenant` may change: those its productions read and no other
    /// tenant's production reads (a graph shared across studios is changed by the CLI).
    pub fn writable_graphs(&self, tenant: &str) -> Vec<String> {
        let others: Vec<String> = self
            .served
            .iter()
            .filter(|s| s.tenant != tenant)
            .flat_map(|s| graphs_of(s))
            .collect();
        let mut graphs = self.graphs(tenant);
        graphs.retain(|g| !others.contains(g));
        graphs
    }

    /// The session options every planner uses.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// `tenant`'s productions.
    pub fn productions<'a, 'b>(
        &'a self,
        tenant: &'b str,
    ) -> impl Iterator<Item = &'a Arc<Served>> + use<'a, 'b> {
        self.served.iter().filter(move |s| s.tenant == tenant)
    }

    /// Every graph `tenant`'s productions read: their own and those they extend.
    pub fn graphs(&self, tenant: &str) -> Vec<String> {
        let mut graphs: Vec<String> = self
            .productions(tenant)
            .flat_map(|s| graphs_of(s))
            .collect();
        graphs.sort();
        graphs.dedup();
        graphs
    }

    /// `tenant`'s production named `name` (its id, IRI or title). Another tenant's
    /// production is as unknown as one that does not exist.
    pub fn production(&self, tenant: &str, name: &str) -> Result<Arc<Served>, ApiError> {
        let folded = name.to_lowercase();
        self.productions(tenant)
            .find(|s| {
                s.id.to_lowercase() == folded
                    || s.world.production.iri == name
                    || s.world.production.title.to_lowercase() == folded
            })
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = self.productions(tenant).map(|s| s.id.as_str()).collect();
                ApiError::not_found(
                    "unknown_production",
                    format!(
                        "no production '{name}' for this key's tenant; known: {}",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    /// The production with IRI `iri`, if `tenant` may see it.
    pub fn production_by_iri(&self, tenant: &str, iri: &str) -> Option<Arc<Served>> {
        self.productions(tenant)
            .find(|s| s.world.production.iri == iri)
            .cloned()
    }

    /// Resolves a character (id, IRI, name or alias) and a story time (beat number or name).
    pub fn resolve(
        &self,
        served: &Served,
        character: &str,
        at: Option<&str>,
    ) -> Result<Resolved, ApiError> {
        let world = &served.world;
        let id = world.character(character).ok_or_else(|| {
            let known: Vec<&str> = characters(world).map(|(_, e)| local_id(&e.iri)).collect();
            ApiError::not_found(
                "unknown_character",
                format!(
                    "no character '{character}' in production '{}'; known: {}",
                    served.id,
                    known.join(", ")
                ),
            )
        })?;
        let beat = match at {
            None => None,
            Some(at) => Some(world.beat(at).ok_or_else(|| {
                let known: Vec<&str> = world.beats.iter().map(|b| b.name.as_str()).collect();
                ApiError::invalid(format!(
                    "field `at`: no beat '{at}' in production '{}'; known: {}",
                    served.id,
                    known.join(", ")
                ))
            })?),
        };
        world
            .check_alive(id, beat)
            .map_err(|e| ApiError::invalid(format!("field `at`: {e}")))?;
        Ok(Resolved {
            character: id,
            beat,
        })
    }

    /// The planner for a character at a beat, built on first use and then shared.
    pub fn planner(
        &self,
        served: &Served,
        resolved: Resolved,
    ) -> Result<Arc<TurnPlanner>, EngineError> {
        let key = (
            served.world.production.iri.clone(),
            resolved.character,
            resolved.beat,
        );
        let mut planners = self.planners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(planner) = planners.get(&key) {
            return Ok(planner.clone());
        }
        let planner = Arc::new(TurnPlanner::new(
            served.world.clone(),
            resolved,
            self.options.clone(),
        )?);
        planners.insert(key, planner.clone());
        Ok(planner)
    }
}

/// The graphs a production reads: its own and those it extends.
fn graphs_of(served: &Served) -> impl Iterator<Item = String> + '_ {
    let p = &served.world.production;
    std::iter::once(p.graph.clone()).chain(p.extends.iter().cloned())
}

/// A production's characters, in id order.
pub fn characters(world: &World) -> impl Iterator<Item = (usize, &lore_canon::Entity)> {
    world
        .entities
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EntityKind::Character)
}
