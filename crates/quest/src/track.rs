//! Quests in play: a session's log of game events and quests; events advance steps, and a
//! changed world is rechecked.
//!
//! The log names entities by IRI, not by [`EntityId`], so it outlives the [`World`] it was
//! written against: it is stored with the session, and read against canon as it is when the
//! next event comes (an entity edited out of canon fails the quests that need it, by name).

use lore_canon::{EntityId, World, fold_name};

use crate::plan::{Action, Motivation, Quest, plan};
use crate::player::{PlayerModel, Style};
use crate::simulate::{Sim, simulate};
use crate::state::{Evidence, WorldState};

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

impl Progress {
    /// The event's name on the wire (`step_done`, `completed`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Progress::StepDone { .. } => "step_done",
            Progress::Completed => "completed",
            Progress::OutOfOrder { .. } => "out_of_order",
            Progress::Unrelated => "unrelated",
            Progress::Refused { .. } => "refused",
            Progress::Failed { .. } => "failed",
            Progress::Possible => "possible",
            Progress::Ended => "ended",
        }
    }
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

/// Where a quest of the log stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// Offered, not yet answered.
    Offered,
    /// The player turned it down.
    Refused,
    /// Accepted; steps remain.
    Running,
    /// Every step done.
    Completed,
    /// It can no longer be done, and why.
    Failed(String),
}

/// An action of the game or of a quest, by IRI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedAction {
    /// The verb (`give`).
    pub verb: String,
    /// The entities, by IRI, in the verb's order.
    pub targets: Vec<String>,
}

impl LoggedAction {
    /// `action` of `world`, by IRI.
    pub fn new(world: &World, action: &Action) -> LoggedAction {
        LoggedAction {
            verb: action.verb().to_owned(),
            targets: action
                .targets()
                .into_iter()
                .map(|e| world.entities[e].iri.clone())
                .collect(),
        }
    }

    /// The action in `world`, or why it no longer reads (an entity gone from canon).
    pub fn resolve(&self, world: &World) -> Result<Action, String> {
        let targets: Vec<&str> = self.targets.iter().map(String::as_str).collect();
        event(world, &self.verb, &targets).map_err(|e| match e {
            EventError::UnknownEntity(iri) => format!("<{iri}> is no longer in canon"),
            other => other.to_string(),
        })
    }
}

/// Something the player did in the game.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedEvent {
    /// What.
    #[serde(flatten)]
    pub action: LoggedAction,
    /// The IRI of the session fact that records it.
    pub fact: String,
}

/// One step of a logged quest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedStep {
    /// What to do.
    #[serde(flatten)]
    pub action: LoggedAction,
    /// The step in words, as it read when planned.
    pub text: String,
    /// The facts that made it possible when planned.
    pub proof: Vec<Evidence>,
}

/// The model's write-up of a quest: words around the plan, never the plan itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteUp {
    /// The quest's title.
    pub title: String,
    /// How the giver puts it to the player.
    pub hook: String,
    /// The giver's lines while offering it.
    pub lines: Vec<String>,
    /// What wrote it: `model` (decoded under the write-up's JSON schema) or `plan` (the
    /// engine's own words, when no model could).
    pub written_by: String,
    /// Its signed provenance record (JSON), over the SHA-256 of [`WriteUp::content`], when
    /// the engine signs.
    #[serde(default)]
    pub provenance: Option<String>,
}

impl WriteUp {
    /// The text its provenance record hashes: `{"title","hook","lines"}` as compact JSON.
    pub fn content(&self) -> String {
        #[derive(serde::Serialize)]
        struct Content<'a> {
            title: &'a str,
            hook: &'a str,
            lines: &'a [String],
        }
        serde_json::to_string(&Content {
            title: &self.title,
            hook: &self.hook,
            lines: &self.lines,
        })
        .unwrap_or_default()
    }
}

/// A quest of the log: the plan, its write-up and where it stands.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoggedQuest {
    /// Its number in the log.
    pub id: usize,
    /// The giver's IRI.
    pub giver: String,
    /// Why the giver wants it.
    pub motivation: Motivation,
    /// How (`"spy on a rival"`).
    pub strategy: String,
    /// How it is mostly played.
    pub style: Style,
    /// The steps.
    pub steps: Vec<LoggedStep>,
    /// How many steps are done, in order.
    pub done: usize,
    /// Where it stands.
    #[serde(flatten)]
    pub status: Status,
    /// The quest that failed and this one replaced.
    pub replaces: Option<usize>,
    /// The model's write-up, once written.
    pub write_up: Option<WriteUp>,
}

impl LoggedQuest {
    /// `quest`, planned in `world`, as the log keeps it.
    pub fn new(world: &World, id: usize, quest: &Quest) -> LoggedQuest {
        LoggedQuest {
            id,
            giver: world.entities[quest.giver].iri.clone(),
            motivation: quest.motivation,
            strategy: quest.strategy.to_owned(),
            style: quest.style,
            steps: quest
                .steps
                .iter()
                .map(|s| LoggedStep {
                    action: LoggedAction::new(world, &s.action),
                    text: s.action.describe(world),
                    proof: s.proof.clone(),
                })
                .collect(),
            done: 0,
            status: Status::Offered,
            replaces: None,
            write_up: None,
        }
    }

    /// Whether it is offered or running: what events and rechecks act on.
    pub fn is_open(&self) -> bool {
        matches!(self.status, Status::Offered | Status::Running)
    }

    /// The giver and steps in `world`, or why they no longer read.
    fn resolve(&self, world: &World) -> Result<(EntityId, Vec<Action>), String> {
        let giver = world
            .entity(&self.giver)
            .ok_or_else(|| format!("the quest giver <{}> is no longer in canon", self.giver))?;
        let steps = self
            .steps
            .iter()
            .map(|s| s.action.resolve(world))
            .collect::<Result<_, _>>()?;
        Ok((giver, steps))
    }

    /// Can the steps from `self.done` on still be done from `sim`? The step that cannot, and
    /// why, if not.
    fn possible(&self, world: &World, sim: &Sim<'_>) -> Result<(), (usize, String)> {
        let (giver, steps) = self.resolve(world).map_err(|r| (self.done, r))?;
        sim.alive(giver)
            .map_err(|r| (self.done, format!("the quest giver is gone: {r}")))?;
        let mut ahead = sim.clone();
        for (i, step) in steps.iter().enumerate().skip(self.done) {
            ahead.apply(step, Some(giver)).map_err(|r| (i, r))?;
        }
        Ok(())
    }

    fn fail(&mut self, step: usize, reason: String) -> Progress {
        self.status = Status::Failed(reason.clone());
        Progress::Failed { step, reason }
    }
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// No quest has that number.
    #[error("no quest {0} in this session")]
    NoQuest(usize),
    /// The quest is not waiting for an answer.
    #[error("quest {id} is {status}, not offered")]
    NotOffered {
        /// The quest.
        id: usize,
        /// Where it stands.
        status: &'static str,
    },
    /// The giver has no quest to give.
    #[error("{0}")]
    NothingToOffer(String),
    /// The action cannot have happened in the world as the session left it.
    #[error("the event cannot have happened: {0}")]
    Impossible(String),
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Offered => "offered",
            Status::Refused => "refused",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed(_) => "failed",
        }
    }
}

/// A session's quests: what the player did in the game, every quest offered and where it
/// stands, and the player model that both update. Stored with the session as it is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct QuestLog {
    /// The player's actions, oldest first.
    pub events: Vec<LoggedEvent>,
    /// Every quest offered, by id.
    pub quests: Vec<LoggedQuest>,
    /// What the player chose, and how the characters regard them.
    pub player: PlayerModel,
}

/// What an event or a recheck did to one quest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestProgress {
    /// The quest.
    pub quest: usize,
    /// What happened to it.
    pub progress: Progress,
}

/// How much a character's regard for the player moves when a quest it gave is completed,
/// and when one is turned down.
const REGARD_COMPLETED: f64 = 1.0;
const REGARD_REFUSED: f64 = -0.5;

impl QuestLog {
    /// The player's world now: `base` (canon at the session's beat) after every logged
    /// event that still reads against `world`.
    fn sim<'a>(&self, world: &'a World, base: &'a WorldState) -> Sim<'a> {
        let mut sim = Sim::new(world, base);
        for e in &self.events {
            // An event that no longer reads or applies (canon changed under it) is skipped:
            // it stays in the log, and the quests that relied on it are rechecked.
            if let Ok(action) = e.action.resolve(world) {
                let _ = sim.apply(&action, None);
            }
        }
        sim
    }

    /// The world state the session's events left, for planning: objects and characters
    /// moved by the player's actions cite the session fact of the action.
    pub fn state(&self, world: &World, base: &WorldState) -> WorldState {
        self.sim(world, base).state(|e| {
            let iri = &world.entities[e].iri;
            self.events
                .iter()
                .rev()
                .find(|ev| ev.action.targets.contains(iri))
                .map_or_else(|| iri.clone(), |ev| ev.fact.clone())
        })
    }

    /// Plans a quest `giver` offers this player now and logs it as offered; `replaces` names
    /// a failed quest it stands in for.
    pub fn offer(
        &mut self,
        world: &World,
        base: &WorldState,
        giver: EntityId,
        seed: u64,
        replaces: Option<usize>,
    ) -> Result<&mut LoggedQuest, LogError> {
        let name = &world.entities[giver].name;
        if !base.alive(giver) {
            return Err(LogError::NothingToOffer(format!(
                "{name} is dead at this beat and gives no quests"
            )));
        }
        let regard = self.player.regard_of(&world.entities[giver].iri);
        if regard <= crate::player::DISTRUST {
            return Err(LogError::NothingToOffer(format!(
                "{name} no longer trusts the player with a quest (regard {regard:+.1})"
            )));
        }
        let state = self.state(world, base);
        let quest = plan(world, &state, giver, &self.player, seed).ok_or_else(|| {
            LogError::NothingToOffer(format!(
                "the world as it stands offers {name} no quest to give"
            ))
        })?;
        // Offered only once the simulator, written apart from the planner, has replayed it.
        simulate(world, &state, &quest).map_err(|f| {
            LogError::NothingToOffer(format!(
                "{name}'s planned quest fails at step {}: {} (a planner bug)",
                f.step + 1,
                f.reason
            ))
        })?;
        let mut logged = LoggedQuest::new(world, self.quests.len(), &quest);
        logged.replaces = replaces;
        self.quests.push(logged);
        Ok(self.quests.last_mut().expect("just pushed"))
    }

    fn offered(&mut self, id: usize) -> Result<&mut LoggedQuest, LogError> {
        let quest = self.quests.get_mut(id).ok_or(LogError::NoQuest(id))?;
        if quest.status != Status::Offered {
            return Err(LogError::NotOffered {
                id,
                status: quest.status.name(),
            });
        }
        Ok(quest)
    }

    /// The player takes up quest `id`: it runs, unless the world changed since the offer so
    /// that it cannot be done, when it fails with the reason.
    pub fn accept(
        &mut self,
        world: &World,
        base: &WorldState,
        id: usize,
    ) -> Result<Progress, LogError> {
        self.offered(id)?;
        let sim = self.sim(world, base);
        let quest = &mut self.quests[id];
        self.player.chose(quest.choice(true));
        if let Err((step, reason)) = quest.possible(world, &sim) {
            return Ok(quest.fail(step, reason));
        }
        quest.status = Status::Running;
        Ok(Progress::Possible)
    }

    /// The player turns quest `id` down.
    pub fn refuse(&mut self, id: usize) -> Result<(), LogError> {
        let quest = self.offered(id)?;
        quest.status = Status::Refused;
        let choice = quest.choice(false);
        let giver = quest.giver.clone();
        self.player.chose(choice);
        self.player.regard(&giver, REGARD_REFUSED);
        Ok(())
    }

    /// The player did `action` in the game, recorded as session fact `fact`. Refused (and not
    /// logged) if it cannot have happened in the world as the session left it; otherwise it
    /// is logged, advances the running quests it matches, and every open quest is rechecked.
    pub fn event(
        &mut self,
        world: &World,
        base: &WorldState,
        action: Action,
        fact: String,
    ) -> Result<Vec<QuestProgress>, LogError> {
        let mut sim = self.sim(world, base);
        sim.apply(&action, None).map_err(LogError::Impossible)?;
        self.events.push(LoggedEvent {
            action: LoggedAction::new(world, &action),
            fact,
        });
        let mut out = Vec::new();
        for quest in self
            .quests
            .iter_mut()
            .filter(|q| q.status == Status::Running)
        {
            let Ok((_, steps)) = quest.resolve(world) else {
                continue; // the recheck below fails it with the reason
            };
            let progress = if steps[quest.done] == action {
                quest.done += 1;
                if quest.done == steps.len() {
                    quest.status = Status::Completed;
                    let giver = quest.giver.clone();
                    self.player.regard(&giver, REGARD_COMPLETED);
                    Progress::Completed
                } else {
                    Progress::StepDone {
                        step: quest.done - 1,
                    }
                }
            } else if let Some(offset) = steps[quest.done..].iter().position(|s| *s == action) {
                Progress::OutOfOrder {
                    expected: quest.done,
                    got: quest.done + offset,
                }
            } else {
                continue;
            };
            out.push(QuestProgress {
                quest: quest.id,
                progress,
            });
        }
        out.extend(self.recheck_from(world, &sim));
        Ok(out)
    }

    /// Canon changed or story time moved on: every open quest that can no longer be done
    /// from where the player is fails, with the reason.
    pub fn recheck(&mut self, world: &World, base: &WorldState) -> Vec<QuestProgress> {
        let sim = self.sim(world, base);
        self.recheck_from(world, &sim)
    }

    fn recheck_from(&mut self, world: &World, sim: &Sim<'_>) -> Vec<QuestProgress> {
        let mut out = Vec::new();
        for quest in self.quests.iter_mut().filter(|q| q.is_open()) {
            if let Err((step, reason)) = quest.possible(world, sim) {
                out.push(QuestProgress {
                    quest: quest.id,
                    progress: quest.fail(step, reason),
                });
            }
        }
        out
    }
}

impl LoggedQuest {
    /// The player's answer to this quest, for their [`PlayerModel`].
    pub fn choice(&self, accepted: bool) -> crate::player::Choice {
        let mut targets: Vec<String> = Vec::new();
        for t in self.steps.iter().flat_map(|s| &s.action.targets) {
            if *t != self.giver && !targets.contains(t) {
                targets.push(t.clone());
            }
        }
        crate::player::Choice {
            strategy: self.strategy.clone(),
            style: self.style,
            targets,
            accepted,
        }
    }
}
