//! Authentication for `ff dashboard` on a non-loopback address: a bearer
//! token or HTTP basic auth. A service mounting [`super::router`] uses its
//! own instead.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use std::sync::Arc;

/// The cookie a browser keeps the token in after opening `?token=T` once.
const TOKEN_COOKIE: &str = "ff_dashboard_token";

/// Who may use the dashboard.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Anyone who reaches it (loopback only, unless mounted behind other auth).
    None,
    /// `Authorization: Bearer T`; a browser opens any page with `?token=T`
    /// once and keeps it in an HttpOnly, SameSite=Strict cookie.
    Token(String),
    /// HTTP basic auth with this user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    // Never print the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(..)"),
            Auth::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, .. }}"),
        }
    }
}

/// A token or user:password that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(String);

impl Auth {
    /// A bearer token: at least 16 characters, none of them space, `;`,
    /// `,`, `"` or `\` (it travels in a header and a cookie).
    pub fn token(t: &str) -> Result<Auth, AuthError> {
        if t.len() < 16 {
            return Err(AuthError("the token must be at least 16 characters".into()));
        }
        if !t
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b";,\"\\".contains(&b))
        {
            return Err(AuthError(
                "the token may hold printable ASCII only, without space ; , \" or \\".into(),
            ));
        }
        Ok(Auth::Token(t.to_owned()))
    }

    /// `user:password` (the password may contain `:`).
    pub fn basic(spec: &str) -> Result<Auth, AuthError> {
        match spec.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Auth::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(AuthError(
                "--basic-auth takes user:password, both non-empty".into(),
            )),
        }
    }

    /// `router` answering only requests that carry these credentials.
    pub fn layer(self, router: Router) -> Router {
        if self == Auth::None {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(Arc::new(self), check))
    }
}

/// Equal, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn refused(challenge: Option<&'static str>, text: &str) -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        super::html::error_page("", "Unauthorized", text),
    )
        .into_response();
    if let Some(c) = challenge {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    res
}

async fn check(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    match &*auth {
        Auth::None => next.run(req).await,
        Auth::Basic { user, password } => {
            let expected = format!("{user}:{password}");
            let given = authorization(req.headers(), "basic")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
            if given.is_some_and(|g| same(&g, expected.as_bytes())) {
                next.run(req).await
            } else {
                refused(
                    Some("Basic realm=\"ff dashboard\", charset=\"UTF-8\""),
                    "This dashboard needs a user name and password.",
                )
            }
        }
        Auth::Token(token) => {
            let t = token.as_bytes();
            let headers = req.headers();
            if authorization(headers, "bearer").is_some_and(|g| same(g.as_bytes(), t))
                || cookie(headers, TOKEN_COOKIE).is_some_and(|g| same(g.as_bytes(), t))
            {
                return next.run(req).await;
            }
            // `?token=T` from a browser: keep it in a cookie and drop it
            // from the address (so it stays out of history and logs).
            let query: Vec<(String, String)> = req
                .uri()
                .query()
                .and_then(|q| serde_urlencoded::from_str(q).ok())
                .unwrap_or_default();
            if query
                .iter()
                .any(|(k, v)| k == "token" && same(v.as_bytes(), t))
            {
                let rest: Vec<&(String, String)> =
                    query.iter().filter(|(k, _)| k != "token").collect();
                let mut to = req.uri().path().to_owned();
                if let Ok(q) = serde_urlencoded::to_string(&rest) {
                    if !q.is_empty() {
                        to = format!("{to}?{q}");
                    }
                }
                let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
                let mut res = StatusCode::SEE_OTHER.into_response();
                if let (Ok(loc), Ok(c)) =
                    (HeaderValue::from_str(&to), HeaderValue::from_str(&cookie))
                {
                    res.headers_mut().insert(header::LOCATION, loc);
                    res.headers_mut().insert(header::SET_COOKIE, c);
                    return res;
                }
            }
            refused(
                Some("Bearer realm=\"ff dashboard\""),
                "This dashboard needs its token: send Authorization: Bearer <token>, \
                 or open any page once with ?token=<token>.",
            )
        }
    }
}
