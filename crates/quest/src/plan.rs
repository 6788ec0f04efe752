//! Motivations, strategies and actions: the planner.

use lore_canon::{EntityId, World};

use crate::player::{PlayerModel, Style};
use crate::state::{Evidence, WorldState};

/// Why a quest giver wants something done (Doran and Parberry's nine motivations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Motivation {
    /// To learn something.
    Knowledge,
    /// To be at ease.
    Comfort,
    /// To be thought well of.
    Reputation,
    /// To set a worry to rest.
    Serenity,
    /// To keep someone or something safe.
    Protection,
    /// To overcome a rival.
    Conquest,
    /// To gain riches.
    Wealth,
    /// To learn a skill.
    Ability,
    /// To be equipped.
    Equipment,
}

/// One step of a quest. Entities are ids in the [`World`] the quest was planned in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Go to a place.
    Goto {
        /// The place.
        place: EntityId,
    },
    /// Pick up an object no one holds, where it lies.
    Get {
        /// The object.
        item: EntityId,
    },
    /// Take an object from the character holding it.
    Take {
        /// The object.
        item: EntityId,
        /// Its holder.
        from: EntityId,
    },
    /// Give an object to a character.
    Give {
        /// The object.
        item: EntityId,
        /// Who receives it.
        to: EntityId,
    },
    /// Deliver an object to a third party.
    Deliver {
        /// The object.
        item: EntityId,
        /// Who receives it.
        to: EntityId,
    },
    /// Bring a character along to a place.
    Escort {
        /// The character.
        who: EntityId,
        /// The place.
        to: EntityId,
    },
    /// Hear a character out.
    Listen {
        /// The character.
        to: EntityId,
    },
    /// Tell the quest giver what happened.
    Report {
        /// The quest giver.
        to: EntityId,
    },
    /// Watch a character unseen.
    Spy {
        /// The character.
        on: EntityId,
    },
    /// Use an object one holds.
    Use {
        /// The object.
        item: EntityId,
    },
    /// Mend an object where it is.
    Repair {
        /// The object.
        item: EntityId,
    },
    /// Hold a place against trouble.
    Defend {
        /// The place.
        place: EntityId,
    },
    /// Overpower a character.
    Capture {
        /// The character.
        who: EntityId,
    },
}

impl Action {
    /// The action's verb.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Goto { .. } => "goto",
            Action::Get { .. } => "get",
            Action::Take { .. } => "take",
            Action::Give { .. } => "give",
            Action::Deliver { .. } => "deliver",
            Action::Escort { .. } => "escort",
            Action::Listen { .. } => "listen",
            Action::Report { .. } => "report",
            Action::Spy { .. } => "spy",
            Action::Use { .. } => "use",
            Action::Repair { .. } => "repair",
            Action::Defend { .. } => "defend",
            Action::Capture { .. } => "capture",
        }
    }

    /// The entities the action names, in order.
    pub fn targets(&self) -> Vec<EntityId> {
        match *self {
            Action::Goto { place: a } | Action::Defend { place: a } => vec![a],
            Action::Get { item: a } | Action::Use { item: a } | Action::Repair { item: a } => {
                vec![a]
            }
            Action::Listen { to: a } | Action::Report { to: a } | Action::Spy { on: a } => vec![a],
            Action::Capture { who: a } => vec![a],
            Action::Take { item, from } => vec![item, from],
            Action::Give { item, to } | Action::Deliver { item, to } => vec![item, to],
            Action::Escort { who, to } => vec![who, to],
        }
    }

    /// The step in words, with the world's names.
    pub fn describe(&self, world: &World) -> String {
        let name = |e: EntityId| world.entities[e].name.as_str();
        match *self {
            Action::Goto { place } => format!("go to {}", name(place)),
            Action::Get { item } => format!("get {}", name(item)),
            Action::Take { item, from } => format!("take {} from {}", name(item), name(from)),
            Action::Give { item, to } => format!("give {} to {}", name(item), name(to)),
            Action::Deliver { item, to } => format!("deliver {} to {}", name(item), name(to)),
            Action::Escort { who, to } => format!("escort {} to {}", name(who), name(to)),
            Action::Listen { to } => format!("listen to {}", name(to)),
            Action::Report { to } => format!("report to {}", name(to)),
            Action::Spy { on } => format!("spy on {}", name(on)),
            Action::Use { item } => format!("use {}", name(item)),
            Action::Repair { item } => format!("repair {}", name(item)),
            Action::Defend { place } => format!("defend {}", name(place)),
            Action::Capture { who } => format!("capture {}", name(who)),
        }
    }
}

/// A step and the canon that makes it possible.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// Why it can be done now: the facts, relationships and entities its preconditions rest on.
    pub proof: Vec<Evidence>,
}

/// A planned quest: the plan is the truth; a model only writes it up.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Quest {
    /// Who gives it.
    pub giver: EntityId,
    /// Why they want it done.
    pub motivation: Motivation,
    /// How (`"spy on a rival"`).
    pub strategy: &'static str,
    /// How it is mostly played.
    pub style: Style,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Quest {
    /// The entities the quest is about, besides its giver, in order of first mention.
    pub fn targets(&self) -> Vec<EntityId> {
        let mut out = Vec::new();
        for step in &self.steps {
            for e in step.action.targets() {
                if e != self.giver && !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        out
    }
}

/// Builds steps, citing canon for each precondition.
struct Planner<'a> {
    world: &'a World,
    state: &'a WorldState,
    giver: EntityId,
}

impl Planner<'_> {
    fn alive(&self, character: EntityId) -> Evidence {
        let entity = &self.world.entities[character];
        let when = self
            .state
            .beat
            .map_or("at any beat".to_owned(), |b| format!("at beat {b}"));
        Evidence {
            iri: entity.iri.clone(),
            says: format!("{} is alive {when} (no lore:diedAt before it)", entity.name),
        }
    }

    fn located(&self, entity: EntityId) -> Option<Evidence> {
        self.state
            .location
            .get(&entity)
            .map(|(place, fact)| Evidence {
                iri: fact.clone(),
                says: format!(
                    "{} is at {}",
                    self.world.entities[entity].name, self.world.entities[*place].name
                ),
            })
    }

    fn exists(&self, entity: EntityId) -> Evidence {
        let entity = &self.world.entities[entity];
        Evidence {
            iri: entity.iri.clone(),
            says: format!("{} exists in this production", entity.name),
        }
    }

    /// The steps that bring the player to `who`: to its place if canon gives one; otherwise
    /// the player meets them wherever they are (none).
    fn meet(&self, who: EntityId, steps: &mut Vec<Step>) {
        if let Some(place) = self.state.place_of(who) {
            steps.push(Step {
                action: Action::Goto { place },
                proof: vec![self.exists(place)],
            });
        }
    }

    fn step(&self, action: Action, proof: Vec<Evidence>) -> Step {
        Step { action, proof }
    }

    /// `who`, alive, and where it is (if canon says).
    fn living_at(&self, who: EntityId) -> Vec<Evidence> {
        let mut proof = vec![self.alive(who)];
        proof.extend(self.located(who));
        proof
    }

    fn back_to_giver(&self, steps: &mut Vec<Step>) {
        self.meet(self.giver, steps);
        steps.push(self.step(
            Action::Report { to: self.giver },
            self.living_at(self.giver),
        ));
    }

    fn feeling(&self, other: EntityId) -> Option<(f64, Evidence)> {
        self.state
            .feelings
            .get(&(self.giver, other))
            .map(|(strength, iri)| {
                (
                    *strength,
                    Evidence {
                        iri: iri.clone(),
                        says: format!(
                            "{} feels {strength:+.1} towards {}",
                            self.world.entities[self.giver].name, self.world.entities[other].name
                        ),
                    },
                )
            })
    }

    /// The places, people and things around the giver, and around those: where errands
    /// lead. Two hops (the giver's place, the people there), so a plan costs what the giver's
    /// neighbourhood holds, not what the world does.
    fn around(&self) -> Vec<EntityId> {
        let mut out: Vec<EntityId> = self.state.neighbours(self.giver).to_vec();
        for &n in self.state.neighbours(self.giver) {
            out.extend_from_slice(self.state.neighbours(n));
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|&e| e != self.giver);
        out
    }

    /// Living characters around the giver.
    fn others<'a>(&'a self, around: &'a [EntityId]) -> impl Iterator<Item = EntityId> + 'a {
        around.iter().copied().filter(move |&c| self.state.alive(c))
    }

    fn objects<'a>(&'a self, around: &'a [EntityId]) -> impl Iterator<Item = EntityId> + 'a {
        around
            .iter()
            .copied()
            .filter(|e| self.state.objects.binary_search(e).is_ok())
    }

    /// Objects around the giver lying somewhere, held by no one.
    fn loose_items<'a>(
        &'a self,
        around: &'a [EntityId],
    ) -> impl Iterator<Item = (EntityId, EntityId)> + 'a {
        self.objects(around).filter_map(|i| {
            (!self.state.holder.contains_key(&i)).then_some(())?;
            self.state.place_of(i).map(|p| (i, p))
        })
    }

    /// Objects around the giver held by a living character other than the giver.
    fn held_items<'a>(
        &'a self,
        around: &'a [EntityId],
    ) -> impl Iterator<Item = (EntityId, EntityId, String)> + 'a {
        self.objects(around).filter_map(|i| {
            let (holder, fact) = self.state.holder.get(&i)?;
            (*holder != self.giver && self.state.alive(*holder)).then(|| (i, *holder, fact.clone()))
        })
    }

    fn fetch(&self, item: EntityId, place: EntityId) -> Vec<Step> {
        let lies = Evidence {
            iri: self.state.location[&item].1.clone(),
            says: format!(
                "{} lies at {}, held by no one",
                self.world.entities[item].name, self.world.entities[place].name
            ),
        };
        vec![
            self.step(Action::Goto { place }, vec![self.exists(place)]),
            self.step(Action::Get { item }, vec![lies]),
        ]
    }

    fn all(&self) -> Vec<Quest> {
        let around = self.around();
        let mut out = Vec::new();
        let mut push = |motivation, strategy, style, steps: Vec<Step>| {
            out.push(Quest {
                giver: self.giver,
                motivation,
                strategy,
                style,
                steps,
            });
        };
        for n in self.others(&around) {
            let mut steps = Vec::new();
            self.meet(n, &mut steps);
            steps.push(self.step(Action::Listen { to: n }, self.living_at(n)));
            self.back_to_giver(&mut steps);
            push(
                Motivation::Knowledge,
                "interview a witness",
                Style::Talk,
                steps,
            );

            let feeling = self.feeling(n);
            if let Some((strength, why)) = feeling.clone().filter(|(s, _)| *s < 0.0) {
                let mut steps = Vec::new();
                self.meet(n, &mut steps);
                let mut proof = self.living_at(n);
                proof.push(why.clone());
                steps.push(self.step(Action::Spy { on: n }, proof.clone()));
                self.back_to_giver(&mut steps);
                push(
                    Motivation::Knowledge,
                    "spy on a rival",
                    Style::Stealth,
                    steps,
                );
                if let Some(home) = self.state.place_of(self.giver).filter(|_| strength <= -0.3) {
                    let mut steps = Vec::new();
                    self.meet(n, &mut steps);
                    steps.push(self.step(Action::Capture { who: n }, proof));
                    let mut escort = vec![self.exists(home)];
                    escort.extend(self.located(self.giver));
                    steps.push(self.step(Action::Escort { who: n, to: home }, escort));
                    steps.push(self.step(
                        Action::Report { to: self.giver },
                        vec![self.alive(self.giver)],
                    ));
                    push(
                        Motivation::Conquest,
                        "bring in a rival",
                        Style::Combat,
                        steps,
                    );
                }
            }
            if let Some((_, why)) = feeling.filter(|(s, _)| *s > 0.0) {
                let mut steps = Vec::new();
                self.meet(n, &mut steps);
                let mut proof = self.living_at(n);
                proof.push(why);
                steps.push(self.step(Action::Listen { to: n }, proof));
                self.back_to_giver(&mut steps);
                push(
                    Motivation::Serenity,
                    "check on a friend",
                    Style::Talk,
                    steps,
                );
            }
        }
        for (item, place) in self.loose_items(&around) {
            let mut steps = self.fetch(item, place);
            self.meet(self.giver, &mut steps);
            steps.push(self.step(
                Action::Give {
                    item,
                    to: self.giver,
                },
                self.living_at(self.giver),
            ));
            push(
                Motivation::Comfort,
                "fetch a comfort",
                Style::Exploration,
                steps,
            );

            let mut steps = self.fetch(item, place);
            steps.push(self.step(Action::Use { item }, vec![self.exists(item)]));
            self.back_to_giver(&mut steps);
            push(
                Motivation::Ability,
                "learn by using",
                Style::Exploration,
                steps,
            );

            let mut steps = vec![self.step(Action::Goto { place }, vec![self.exists(place)])];
            steps.push(self.step(
                Action::Repair { item },
                self.located(item).into_iter().collect(),
            ));
            self.back_to_giver(&mut steps);
            push(
                Motivation::Protection,
                "mend what is broken",
                Style::Exploration,
                steps,
            );

            for n in self.others(&around) {
                let mut steps = self.fetch(item, place);
                self.meet(n, &mut steps);
                steps.push(self.step(Action::Deliver { item, to: n }, self.living_at(n)));
                self.back_to_giver(&mut steps);
                push(
                    Motivation::Equipment,
                    "deliver supplies",
                    Style::Talk,
                    steps,
                );
            }
        }
        for (item, holder, fact) in self.held_items(&around) {
            let held = Evidence {
                iri: fact,
                says: format!(
                    "{} holds {}",
                    self.world.entities[holder].name, self.world.entities[item].name
                ),
            };
            let friendly = self.feeling(holder).is_some_and(|(s, _)| s > 0.0);
            let (motivation, strategy, style) = if friendly {
                (Motivation::Equipment, "borrow from a friend", Style::Talk)
            } else {
                (Motivation::Wealth, "lift valuables", Style::Stealth)
            };
            let mut steps = Vec::new();
            self.meet(holder, &mut steps);
            let mut proof = self.living_at(holder);
            proof.push(held.clone());
            steps.push(self.step(Action::Take { item, from: holder }, proof));
            self.meet(self.giver, &mut steps);
            steps.push(self.step(
                Action::Give {
                    item,
                    to: self.giver,
                },
                self.living_at(self.giver),
            ));
            push(motivation, strategy, style, steps);
        }
        if let Some(home) = self.state.place_of(self.giver) {
            let steps = vec![
                self.step(
                    Action::Goto { place: home },
                    self.located(self.giver).into_iter().collect(),
                ),
                self.step(Action::Defend { place: home }, vec![self.exists(home)]),
                self.step(
                    Action::Report { to: self.giver },
                    self.living_at(self.giver),
                ),
            ];
            push(Motivation::Protection, "stand guard", Style::Combat, steps);
        }
        let places = around
            .iter()
            .filter(|e| self.state.places.binary_search(e).is_ok());
        for &place in places {
            if Some(place) == self.state.place_of(self.giver) {
                continue;
            }
            let mut steps = vec![self.step(Action::Goto { place }, vec![self.exists(place)])];
            self.back_to_giver(&mut steps);
            push(
                Motivation::Reputation,
                "brave a far place",
                Style::Exploration,
                steps,
            );
        }
        out
    }
}

/// Every quest `giver` could give in `state`; empty when the giver is dead at the beat.
pub fn quests(world: &World, state: &WorldState, giver: EntityId) -> Vec<Quest> {
    if !state.alive(giver) {
        return Vec::new();
    }
    Planner {
        world,
        state,
        giver,
    }
    .all()
}

/// The quest `giver` offers this player: among every valid quest, the one whose style the
/// player likes best and which repeats least of what they were offered before; `seed` breaks
/// ties (and varies offers between calls). `None` when the world allows none.
pub fn plan(
    world: &World,
    state: &WorldState,
    giver: EntityId,
    player: &PlayerModel,
    seed: u64,
) -> Option<Quest> {
    let regard = player.regard_of(&world.entities[giver].iri);
    let mut best: Option<(f64, Quest)> = None;
    for (i, quest) in quests(world, state, giver).into_iter().enumerate() {
        let targets: Vec<String> = quest
            .targets()
            .into_iter()
            .map(|e| world.entities[e].iri.clone())
            .collect();
        let jitter = (mix(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 11) as f64
            / (1u64 << 53) as f64;
        // A character who thinks well of the player trusts them with longer errands; a cool
        // one tries them with short ones.
        let trust = 0.3 * regard * (quest.steps.len() as f64 - 3.0) / 3.0;
        let score = player.preference(quest.style) - 0.6 * player.seen(quest.strategy, &targets)
            + trust
            + 0.5 * jitter;
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, quest));
        }
    }
    best.map(|(_, q)| q)
}

/// SplitMix64's finaliser: a fixed, portable mix of the seed.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
