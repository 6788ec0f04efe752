//! The web UI for writers, trust-and-safety staff and testers, served under `/ui`.
//!
//! Server-rendered HTML (maud templates, so every value is escaped where it is shown) with
//! plain forms: no script is needed, every control is a native element with a label, and the
//! pages work from the keyboard. Each handler calls the same code as the JSON API (its route
//! handlers or the engine), so the UI enforces exactly the API's roles and tenants. The
//! browser holds the API key in an HttpOnly, SameSite=Strict cookie scoped to `/ui`, which
//! also keeps other sites from posting the forms.

mod canon;
mod layout;
mod play;
mod policy;
mod review;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::auth::Role;
use crate::state::App;
use crate::ui::layout::{KEY_COOKIE, UiCaller, layout};

/// The UI's routes.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/play", get(play::start_page).post(play::start))
        .route("/ui/play/{session}", get(play::page).post(play::say))
        .route("/ui/canon", get(canon::productions))
        .route("/ui/canon/{production}", get(canon::production))
        .route("/ui/canon/{production}/{entity}", get(canon::entity))
        .route("/ui/review", get(review::queue))
        .route("/ui/review/draft", post(review::draft))
        .route("/ui/review/{id}/{decision}", post(review::decide))
        .route("/ui/history", get(review::history))
        .route("/ui/history/diff", get(review::diff))
        .route("/ui/history/{commit}", get(review::commit))
        .route("/ui/history/{commit}/revert", post(review::revert))
        .route("/ui/policy", get(policy::page))
}

async fn home(State(_app): State<Arc<App>>, UiCaller(caller): UiCaller) -> Markup {
    layout(
        "Start",
        Some(&caller),
        html! {
            h1 { "Lorekeeper" }
            p { "Signed in for " strong { (caller.tenant) } " as a " (caller.role.as_str()) "." }
            ul {
                li { a href="/ui/play" { "Playground" } ": talk to a character and see what each reply stood on." }
                @if caller.role >= Role::Writer {
                    li { a href="/ui/canon" { "Canon" } ": characters, places and facts over story time." }
                    li { a href="/ui/review" { "Review" } ": proposals waiting for a writer." }
                    li { a href="/ui/history" { "History" } ": every change of canon; diff and revert." }
                    li { a href="/ui/policy" { "Policy" } ": ratings, off-limit topics, likeness consent." }
                }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginQuery {
    expired: Option<String>,
}

fn login_page(message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(message) = message { p role="alert" class="error" { (message) } }
            form method="post" action="/ui/login" {
                label for="key" { "API key" }
                input id="key" name="key" type="password" autocomplete="current-password" required size="60";
                p { small { "A key from " code { "lore keys create" } "; it is kept in a cookie for this site only." } }
                button type="submit" { "Sign in" }
            }
        },
    )
}

async fn login_form(axum::extract::Query(query): axum::extract::Query<LoginQuery>) -> Markup {
    login_page(
        query
            .expired
            .map(|_| "That key is no longer valid; sign in again."),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(app): State<Arc<App>>, Form(form): Form<LoginForm>) -> Response {
    let key = form.key.trim();
    match app.keys.verify(&app.db, key).await {
        Ok(_) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/ui".to_owned()),
                (
                    header::SET_COOKIE,
                    format!("{KEY_COOKIE}={key}; Path=/ui; HttpOnly; SameSite=Strict"),
                ),
            ],
        )
            .into_response(),
        Err(e) => (StatusCode::UNAUTHORIZED, login_page(Some(&e.message))).into_response(),
    }
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/ui/login".to_owned()),
            (
                header::SET_COOKIE,
                format!("{KEY_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}
