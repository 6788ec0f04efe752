//! A quest in play: events from the game advance its steps; a changed world is rechecked.

use lore_canon::{EntityId, World, fold_name};

use crate::plan::{Action, Quest};
use crate::simulate::Sim;
use crate::state::WorldState;

/// What an event or a recheck did to a running quest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The quest's next step was done.
    StepDone {
        /// Its index.
        step: usize,
    },
    /// The last step was done.
    Completed,
    /// The action is a later step of the quest, done before the steps ahead of it; it is
    /// recorded, and the quest still waits for `expected`.
    OutOfOrder {
        /// The step the quest waits for.
        expected: usize,
        /// The step the action matches.
        got: usize,
    },
    /// The action is not part of the quest (it is recorded all the same).
    Unrelated,
    /// The action cannot have happened in the world as it stands (the player does not have
    /// the item, is not there, the character is dead): refused, nothing recorded.
    Refused {
        /// Why.
        reason: String,
    },
    /// The quest can no longer be done.
    Failed {
        /// The step that cannot be done.
        step: usize,
        /// Why.
        reason: String,
    },
    /// Still possible as it stands.
    Possible,
    /// The quest had already ended; nothing changed.
    Ended,
}

/// Why a game event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The verb is not an action of the vocabulary.
    #[error(
        "unknown action {0:?}; expected one of goto, get, take, give, deliver, escort, listen, report, spy, use, repair, defend, capture"
    )]
    UnknownAction(String),
    /// The action takes a different number of entities.
    #[error("{verb} takes {expected} entities ({shape}), got {got}")]
    Arity {
        /// The verb.
        verb: String,
        /// How many it takes.
        expected: usize,
        /// What they are.
        shape: &'static str,
        /// How many were given.
        got: usize,
    },
    /// A name that is no entity of the production.
    #[error("no entity {0:?} in this production")]
    UnknownEntity(String),
}

/// Reads a game event (`"give"`, `["the Everlight", "Odile"]`): entities by IRI, name or alias.
pub fn event(world: &World, verb: &str, targets: &[&str]) -> Result<Action, EventError> {
    type Make = fn(EntityId, EntityId) -> Action;
    // One place knows each verb: how to build it and what it takes.
    let (make, shape): (Make, &'static str) = match verb {
        "goto" => (|a, _| Action::Goto { place: a }, "one entity"),
        "get" => (|a, _| Action::Get { item: a }, "one entity"),
        "take" => (|a, b| Action::Take { item: a, from: b }, "item, holder"),
        "give" => (|a, b| Action::Give { item: a, to: b }, "item, receiver"),
        "deliver" => (|a, b| Action::Deliver { item: a, to: b }, "item, receiver"),
        "escort" => (|a, b| Action::Escort { who: a, to: b }, "character, place"),
        "listen" => (|a, _| Action::Listen { to: a }, "one entity"),
        "report" => (|a, _| Action::Report { to: a }, "one entity"),
        "spy" => (|a, _| Action::Spy { on: a }, "one entity"),
        "use" => (|a, _| Action::Use { item: a }, "one entity"),
        "repair" => (|a, _| Action::Repair { item: a }, "one entity"),
        "defend" => (|a, _| Action::Defend { place: a }, "one entity"),
        "capture" => (|a, _| Action::Capture { who: a }, "one entity"),
        other => return Err(EventError::UnknownAction(other.to_owned())),
    };
    let expected = make(0, 0).targets().len();
    if targets.len() != expected {
        return Err(EventError::Arity {
            verb: verb.to_owned(),
            expected,
            shape,
            got: targets.len(),
        });
    }
    let ids: Vec<EntityId> = targets
        .iter()
        .map(|t| entity(world, t).ok_or_else(|| EventError::UnknownEntity((*t).to_owned())))
        .collect::<Result<_, _>>()?;
    Ok(make(ids[0], ids.get(1).copied().unwrap_or(ids[0])))
}

fn entity(world: &World, name: &str) -> Option<EntityId> {
    let wanted = fold_name(name);
    world.entity(name).or_else(|| {
        world.entities.iter().position(|e| {
            std::iter::once(&e.name)
                .chain(&e.aliases)
                .any(|n| fold_name(n) == wanted)
        })
    })
}

/// Where a quest in play stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Steps remain.
    Running,
    /// Every step done.
    Completed,
    /// It can no longer be done, and why.
    Failed(String),
}

/// A quest in play and what the player has done since it was accepted.
#[derive(Debug, Clone)]
pub struct QuestRun {
    /// The quest.
    pub quest: Quest,
    /// Steps done, in order.
    pub done: usize,
    /// Every action the player took since accepting, in order.
    pub actions: Vec<Action>,
    /// Where it stands.
    pub status: Status,
}

impl QuestRun {
    /// A quest just accepted.
    pub fn new(quest: Quest) -> QuestRun {
        QuestRun {
            quest,
            done: 0,
            actions: Vec::new(),
            status: Status::Running,
        }
    }

    /// The player's world after their recorded actions, from `state`.
    fn replay<'a>(&self, world: &'a World, state: &'a WorldState) -> Result<Sim<'a>, String> {
        let mut sim = Sim::new(world, state);
        for action in &self.actions {
            sim.apply(action, self.quest.giver)?;
        }
        Ok(sim)
    }

    /// The player did `action` in the game.
    pub fn event(&mut self, world: &World, state: &WorldState, action: Action) -> Progress {
        if self.status != Status::Running {
            return Progress::Ended;
        }
        let mut sim = match self.replay(world, state) {
            Ok(sim) => sim,
            Err(reason) => return self.fail(self.done, reason),
        };
        if let Err(reason) = sim.apply(&action, self.quest.giver) {
            return Progress::Refused { reason };
        }
        self.actions.push(action);
        let steps = &self.quest.steps;
        if steps[self.done].action == action {
            self.done += 1;
            if self.done == steps.len() {
                self.status = Status::Completed;
                return Progress::Completed;
            }
            return Progress::StepDone {
                step: self.done - 1,
            };
        }
        match steps[self.done..].iter().position(|s| s.action == action) {
            Some(offset) => Progress::OutOfOrder {
                expected: self.done,
                got: self.done + offset,
            },
            None => Progress::Unrelated,
        }
    }

    /// Canon changed or story time moved on: can the rest of the quest still be done from
    /// where the player is? If not, the quest fails with the reason.
    pub fn recheck(&mut self, world: &World, state: &WorldState) -> Progress {
        if self.status != Status::Running {
            return Progress::Ended;
        }
        let mut sim = match self.replay(world, state) {
            Ok(sim) => sim,
            Err(reason) => return self.fail(self.done, reason),
        };
        if let Err(reason) = sim.alive(self.quest.giver) {
            return self.fail(self.done, format!("the quest giver is gone: {reason}"));
        }
        for (i, step) in self.quest.steps.iter().enumerate().skip(self.done) {
            if let Err(reason) = sim.apply(&step.action, self.quest.giver) {
                return self.fail(i, reason);
            }
        }
        Progress::Possible
    }

    fn fail(&mut self, step: usize, reason: String) -> Progress {
        self.status = Status::Failed(reason.clone());
        Progress::Failed { step, reason }
    }
}
