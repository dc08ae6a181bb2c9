//! Signing in and out. Any password works, as upstream; the user name is kept
//! in the `session` cookie.

use http::header::{COOKIE, LOCATION, REFERER, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::server::{self, Body};

const COOKIE_NAME: &str = "session";

/// The signed-in user, from the `session` cookie.
pub fn user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| percent_decode_str(value).decode_utf8().ok())
        .map(|user| user.into_owned())
        .filter(|user| !user.is_empty())
}

/// `POST /login` with the form field `username`: sets the cookie and sends the
/// browser back where it came from. Without a user name nobody is signed in.
pub async fn login(request: Request<Incoming>) -> Response<Body> {
    let back = back_to(request.headers());
    let form = server::read_body(request).await.unwrap_or_default();
    let user = form_urlencoded::parse(&form)
        .find(|(name, _)| name == "username")
        .map(|(_, value)| value.trim().to_owned())
        .filter(|user| !user.is_empty());
    let Some(user) = user else {
        return redirect(back, None);
    };
    // Percent-encoding keeps any name within the characters a cookie allows.
    let value = utf8_percent_encode(&user, NON_ALPHANUMERIC);
    let cookie = format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax");
    redirect(back, HeaderValue::from_str(&cookie).ok())
}

/// `GET /logout`: clears the cookie and sends the browser back.
pub fn logout(headers: &HeaderMap) -> Response<Body> {
    let cookie = HeaderValue::from_static("session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    redirect(back_to(headers), Some(cookie))
}

/// The page the form was on, as upstream redirects to the referrer; the
/// product page when the browser did not say.
fn back_to(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REFERER)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("/productpage"))
}

fn redirect(location: HeaderValue, cookie: Option<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(LOCATION, location);
    if let Some(cookie) = cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(cookie: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static(cookie));
        headers
    }

    #[test]
    fn user_is_read_among_other_cookies() {
        assert_eq!(
            user(&with_cookie("theme=dark; session=jason; x=1")).as_deref(),
            Some("jason")
        );
        assert_eq!(
            user(&with_cookie("session=J%C3%A9r%C3%B4me%20D")).as_deref(),
            Some("Jérôme D")
        );
    }

    #[test]
    fn no_or_empty_cookie_is_nobody() {
        assert_eq!(user(&HeaderMap::new()), None);
        assert_eq!(user(&with_cookie("session=")), None);
        assert_eq!(user(&with_cookie("sessions=jason")), None);
    }
}
