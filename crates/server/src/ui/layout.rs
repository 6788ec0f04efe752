//! What every page shares: the signed-in caller, errors shown as pages, the frame and the
//! style, and the change lines of a diff.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::state::App;

/// The cookie that carries the API key.
pub(crate) const KEY_COOKIE: &str = "lore_key";

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
