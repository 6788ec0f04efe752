//! The stable prefix of every prompt: production, persona, voice, scene and standing facts.

use lore_canon::{StandingContext, World};

/// Writes the preamble for `standing` in `world`'s production.
///
/// It is prose and sample dialogue rather than instructions, because a small base model
/// continues text far better than it follows orders; chat models read it as a system prompt.
pub fn preamble(world: &World, standing: &StandingContext) -> String {
    let production = &world.production;
    let name = &standing.name;
    let mut out = String::with_capacity(1024);
    out.push_str(&format!("A scene from \"{}\"", production.title));
    if let Some(rating) = &production.rating_label {
        out.push_str(&format!(", rated {rating}"));
    }
    out.push('.');
    if let Some(premise) = &production.premise {
        out.push(' ');
        out.push_str(premise);
    }
    out.push_str("\n\n");
    if let Some(persona) = &standing.persona {
        out.push_str(persona);
        out.push('\n');
    }
    if let Some(style) = &standing.speech_style {
        out.push_str(&format!("How {name} speaks: {style}\n"));
    }
    if !standing.goals.is_empty() {
        out.push_str(&format!(
            "What {name} wants: {}\n",
            standing.goals.join(" ")
        ));
    }
    if let Some(scene) = &standing.scene {
        out.push_str(&format!("{name} is at {scene}, talking with a visitor.\n"));
    }
    if !standing.facts.is_empty() {
        out.push_str(&format!("What {name} knows:\n"));
        for fact in &standing.facts {
            out.push_str("- ");
            out.push_str(&fact.text);
            out.push('\n');
        }
    }
    if !standing.sample_lines.is_empty() {
        out.push('\n');
        for line in &standing.sample_lines {
            out.push_str(&format!("{name}: {line}\n"));
        }
    }
    out.truncate(out.trim_end().len());
    out
}
