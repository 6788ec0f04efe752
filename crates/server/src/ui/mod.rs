//! The web UI for writers, trust-and-safety staff and testers, served under `/ui`.
//!
//! Server-rendered HTML (maud templates, so every value is escaped where it is shown) with
//! plain forms: no script is needed, every control is a native element with a label, and the
//! pages work from the keyboard. Each handler calls the same code as the JSON API (its route
//! handlers or the engine), so the UI enforces exactly the API's roles and tenants. The
//! browser holds the API key in an HttpOnly, SameSite=Strict cookie scoped to `/ui`, which
//! also keeps other sites from posting the forms.

mod canon;
mod play;
mod policy;
mod review;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::App;

/// The cookie that carries the API key.
const KEY_COOKIE: &str = "lore_key";

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

/// A signed-in user of the UI: the key's caller. Without a valid key cookie, the browser is
/// sent to the sign-in page.
pub(crate) struct UiCaller(pub Caller);

impl FromRequestParts<Arc<App>> for UiCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let token = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(KEY_COOKIE)?.strip_prefix('='))
            .map(str::to_owned);
        let Some(token) = token else {
            return Err(Redirect::to("/ui/login").into_response());
        };
        match app.keys.verify(&app.db, &token).await {
            Ok(caller) => Ok(UiCaller(caller)),
            Err(_) => Err(Redirect::to("/ui/login?expired=1").into_response()),
        }
    }
}

impl UiCaller {
    /// Refuses with a page naming the role needed.
    pub(crate) fn require(&self, role: Role) -> Result<(), UiError> {
        self.0.require(role).map_err(UiError)
    }
}

/// An API error shown as a page (status kept).
pub(crate) struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        UiError(error)
    }
}

impl From<crate::db::DbError> for UiError {
    fn from(error: crate::db::DbError) -> Self {
        UiError(error.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.0.status.canonical_reason().unwrap_or("Error");
        let body = layout(
            title,
            None,
            html! {
                h1 { (title) }
                p role="alert" class="error" { (self.0.message) }
                p { code { (self.0.code) } }
                p { a href="/ui" { "Back to the start page" } }
            },
        );
        (self.0.status, body).into_response()
    }
}

/// What a UI handler returns.
pub(crate) type Page = Result<Markup, UiError>;

/// The page frame: skip link, navigation (for a signed-in caller), the content.
pub(crate) fn layout(title: &str, caller: Option<&Caller>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Lorekeeper" }
                style { (STYLE) }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    span class="brand" { "Lorekeeper" }
                    @if let Some(caller) = caller {
                        nav aria-label="Main" {
                            a href="/ui/play" { "Playground" }
                            @if caller.role >= Role::Writer {
                                a href="/ui/canon" { "Canon" }
                                a href="/ui/review" { "Review" }
                                a href="/ui/history" { "History" }
                                a href="/ui/policy" { "Policy" }
                            }
                        }
                        form method="post" action="/ui/logout" class="inline" {
                            span class="who" { (caller.tenant) " · " (caller.role.as_str()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (content) }
            }
        }
    }
}

const STYLE: &str = "
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fafaf7}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.5rem;background:#23303f;color:#fff;flex-wrap:wrap}
header a{color:#fff}nav{display:flex;gap:1rem}.brand{font-weight:700}
.who{margin-right:.5rem}main{max-width:70rem;margin:0 auto;padding:1rem 1.5rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.3rem}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #e0a100;outline-offset:2px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
.added{color:#0a5d1a}.removed{color:#a11}.error{color:#a11;font-weight:600}.notice{color:#0a5d1a;font-weight:600}
.badge{display:inline-block;padding:0 .4rem;border-radius:4px;background:#eee;font-size:.85rem}
.blocked{background:#fdd}.ok{background:#dfd}
pre,code{font:13px/1.4 ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
label{display:block;font-weight:600;margin-top:.5rem}input,select,textarea{font:inherit;max-width:100%}
textarea{width:100%}form.inline{display:inline}button{font:inherit;padding:.2rem .8rem;margin-top:.4rem}
.turn{border-left:4px solid #23303f;padding-left:.8rem;margin:1rem 0}.player{font-weight:600}
details{margin:.3rem 0}
";

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

/// The change lines of a diff, added then removed.
pub(crate) fn change_lines(change: &crate::wire::ChangeOut) -> Markup {
    html! {
        @if change.added.is_empty() && change.removed.is_empty() {
            p { "No change." }
        } @else {
            pre class="diff" {
                @for line in &change.added { span class="added" { "+ " (line) } "\n" }
                @for line in &change.removed { span class="removed" { "- " (line) } "\n" }
            }
        }
    }
}
