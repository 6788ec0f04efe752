//! Replays a quest against the world state: every precondition checked, every postcondition
//! applied. Written apart from the planner, which never calls it, so that it can test it.

use std::collections::{HashMap, HashSet};

use lore_canon::{EntityId, EntityKind, World};

use crate::plan::{Action, Quest};
use crate::state::WorldState;

/// The first step that cannot be done, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step's index.
    pub step: usize,
    /// What does not hold.
    pub reason: String,
}

#[derive(Clone)]
pub(crate) struct Sim<'a> {
    world: &'a World,
    state: &'a WorldState,
    at: Option<EntityId>,
    carrying: HashSet<EntityId>,
    location: HashMap<EntityId, EntityId>,
    holder: HashMap<EntityId, EntityId>,
}

impl<'a> Sim<'a> {
    /// The player nowhere in particular, with nothing, in `state`.
    pub(crate) fn new(world: &'a World, state: &'a WorldState) -> Sim<'a> {
        Sim {
            world,
            state,
            at: None,
            carrying: HashSet::new(),
            location: state.location.iter().map(|(&e, (p, _))| (e, *p)).collect(),
            holder: state.holder.iter().map(|(&i, (h, _))| (i, *h)).collect(),
        }
    }

    fn name(&self, e: EntityId) -> &str {
        &self.world.entities[e].name
    }

    fn kind(&self, e: EntityId, kind: EntityKind) -> Result<(), String> {
        match self.world.entities.get(e) {
            Some(entity) if entity.kind == kind => Ok(()),
            Some(entity) => Err(format!("{} is not a {kind:?}", entity.name)),
            None => Err(format!("entity {e} is not in the world")),
        }
    }

    pub(crate) fn alive(&self, c: EntityId) -> Result<(), String> {
        self.kind(c, EntityKind::Character)?;
        if self.state.alive(c) {
            Ok(())
        } else {
            Err(format!("{} is dead at this beat", self.name(c)))
        }
    }

    /// The player is where `e` is (or canon gives `e` no place, so they can meet anywhere).
    fn with(&self, e: EntityId) -> Result<(), String> {
        match self.location.get(&e) {
            Some(&place) if self.at != Some(place) => Err(format!(
                "the player is not at {}, where {} is",
                self.name(place),
                self.name(e)
            )),
            _ => Ok(()),
        }
    }

    fn carrying(&self, item: EntityId) -> Result<(), String> {
        if self.carrying.contains(&item) {
            Ok(())
        } else {
            Err(format!("the player does not have {}", self.name(item)))
        }
    }

    /// Checks `action`'s preconditions and applies its postconditions. With `giver`, also the
    /// rules of that giver's quest (a report goes to them; no one spies on or captures them);
    /// without, only what the world allows.
    pub(crate) fn apply(&mut self, action: &Action, giver: Option<EntityId>) -> Result<(), String> {
        match *action {
            Action::Goto { place } => {
                self.kind(place, EntityKind::Place)?;
                self.at = Some(place);
            }
            Action::Get { item } => {
                self.kind(item, EntityKind::Object)?;
                if let Some(&h) = self.holder.get(&item) {
                    return Err(format!("{} holds {}", self.name(h), self.name(item)));
                }
                if !self.location.contains_key(&item) {
                    return Err(format!("canon does not say where {} lies", self.name(item)));
                }
                self.with(item)?;
                self.location.remove(&item);
                self.carrying.insert(item);
            }
            Action::Take { item, from } => {
                self.kind(item, EntityKind::Object)?;
                self.alive(from)?;
                if self.holder.get(&item) != Some(&from) {
                    return Err(format!(
                        "{} does not hold {}",
                        self.name(from),
                        self.name(item)
                    ));
                }
                self.with(from)?;
                self.holder.remove(&item);
                self.carrying.insert(item);
            }
            Action::Give { item, to } | Action::Deliver { item, to } => {
                self.carrying(item)?;
                self.alive(to)?;
                self.with(to)?;
                self.carrying.remove(&item);
                self.holder.insert(item, to);
            }
            Action::Escort { who, to } => {
                self.alive(who)?;
                self.kind(to, EntityKind::Place)?;
                self.with(who)?;
                self.at = Some(to);
                self.location.insert(who, to);
            }
            Action::Listen { to: who } | Action::Spy { on: who } | Action::Capture { who } => {
                self.alive(who)?;
                if Some(who) == giver && !matches!(action, Action::Listen { .. }) {
                    return Err(format!("{} would act against themselves", self.name(who)));
                }
                self.with(who)?;
            }
            Action::Report { to } => {
                if giver.is_some_and(|g| g != to) {
                    return Err(format!("{} did not give this quest", self.name(to)));
                }
                self.alive(to)?;
                self.with(to)?;
            }
            Action::Use { item } => self.carrying(item)?,
            Action::Repair { item } => {
                self.kind(item, EntityKind::Object)?;
                if !self.carrying.contains(&item) {
                    if !self.location.contains_key(&item) {
                        return Err(format!("canon does not say where {} is", self.name(item)));
                    }
                    self.with(item)?;
                }
            }
            Action::Defend { place } => {
                self.kind(place, EntityKind::Place)?;
                if self.at != Some(place) {
                    return Err(format!("the player is not at {}", self.name(place)));
                }
            }
        }
        Ok(())
    }
}

impl Sim<'_> {
    /// The world as the player's actions left it: `base` with objects moved to where the
    /// actions put them (taken objects are with the player, so nowhere in the world) and
    /// characters to where they were escorted; each change cites `fact`, the session fact
    /// of the action that made it.
    pub(crate) fn state(&self, fact: impl Fn(EntityId) -> String) -> WorldState {
        let mut state = self.state.clone();
        state.location.retain(|e, _| self.location.contains_key(e));
        for (&e, &place) in &self.location {
            if state.location.get(&e).is_none_or(|(p, _)| *p != place) {
                state.location.insert(e, (place, fact(e)));
            }
        }
        state.holder.retain(|i, _| self.holder.contains_key(i));
        for (&item, &holder) in &self.holder {
            if state.holder.get(&item).is_none_or(|(h, _)| *h != holder) {
                state.holder.insert(item, (holder, fact(item)));
            }
        }
        state
    }
}

/// Replays `quest` from `state`, the player starting nowhere in particular with nothing.
/// A quest must end with its giver (a report or a gift) and every step must be possible when
/// its turn comes.
pub fn simulate(world: &World, state: &WorldState, quest: &Quest) -> Result<(), Failure> {
    let mut sim = Sim::new(world, state);
    sim.alive(quest.giver)
        .map_err(|reason| Failure { step: 0, reason })?;
    for (step, s) in quest.steps.iter().enumerate() {
        sim.apply(&s.action, Some(quest.giver))
            .map_err(|reason| Failure { step, reason })?;
    }
    let ends_with_giver = quest.steps.last().is_some_and(|s| {
        matches!(s.action, Action::Report { to } | Action::Give { to, .. } if to == quest.giver)
    });
    if !ends_with_giver {
        return Err(Failure {
            step: quest.steps.len(),
            reason: "the quest does not end with its giver".into(),
        });
    }
    Ok(())
}
