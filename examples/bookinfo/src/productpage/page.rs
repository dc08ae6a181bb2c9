//! The HTML pages. They are small enough to write out by hand; every value that
//! comes from a request or an upstream is escaped.
//!
//! Element ids and classes are stable so that tests and demo scripts can find
//! things: `#user-name`, `#details` (with `#details-error`), `#reviews` (with
//! `#reviews-error` and `#reviews-served-by`), `.review[data-reviewer]`,
//! `.stars[data-stars][data-color]` and `.rating-error`.

use std::fmt::Write;

use serde_json::Value;

use super::{DETAILS_UNAVAILABLE, Product, REVIEWS_UNAVAILABLE};
use crate::reviews::{ProductReviews, Rating, Review};

/// The most stars a rating can have; the rest of a rating is drawn empty.
const MAX_STARS: u64 = 5;

/// The details fields the page lists, with their labels.
const DETAILS_FIELDS: [(&str, &str); 8] = [
    ("author", "Author"),
    ("year", "Year"),
    ("type", "Type"),
    ("pages", "Pages"),
    ("publisher", "Publisher"),
    ("language", "Language"),
    ("ISBN-10", "ISBN-10"),
    ("ISBN-13", "ISBN-13"),
];

const STYLE: &str = "body{font-family:sans-serif;margin:0}\
    nav{background:#222;color:#eee;padding:.6em 1em;display:flex;justify-content:space-between}\
    nav a{color:#eee}main{max-width:60em;margin:1em auto;padding:0 1em}\
    .columns{display:flex;gap:2em}.columns section{flex:1}\
    .review{border-left:4px solid #ccc;margin:1em 0;padding:.2em 1em}\
    .stars{font-size:1.3em}.error{color:#a00}";

/// What the product page shows.
#[derive(Debug)]
pub struct ProductPage<'a> {
    pub user: Option<&'a str>,
    pub product: &'a Product,
    /// `None` when details gave no answer.
    pub details: Option<&'a Value>,
    /// `None` when reviews gave no answer.
    pub reviews: Option<&'a ProductReviews>,
}

/// `/` and `/index.html`.
pub fn index() -> String {
    let body = "<main><h1>Bookinfo</h1>\
        <p>A book shop made of four services: productpage calls details and reviews, \
        and reviews v2 and v3 call ratings.</p>\
        <p><a id=\"productpage-link\" href=\"/productpage\">Open the product page</a></p>\
        </main>";
    document("Bookinfo", body)
}

/// `/productpage`.
pub fn product_page(page: &ProductPage<'_>) -> String {
    let mut body = nav(page.user);
    let _ = write!(
        body,
        "<main><h1 id=\"product-title\">{}</h1><p id=\"product-description\">{}</p>\
         <div class=\"columns\">{}{}</div></main>",
        escape(page.product.title),
        // Fixed text from the product list, written as HTML on purpose.
        page.product.description_html,
        details(page.details),
        reviews(page.reviews),
    );
    document("Simple Bookstore App", &body)
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
}

fn nav(user: Option<&str>) -> String {
    let account = match user {
        Some(user) => format!(
            "<span id=\"user\">Signed in as <b id=\"user-name\">{}</b></span> \
             <a id=\"logout\" href=\"/logout\">Sign out</a>",
            escape(user)
        ),
        None => "<form id=\"login\" method=\"post\" action=\"/login\">\
                 <input name=\"username\" placeholder=\"User name\"> \
                 <input name=\"passwd\" type=\"password\" placeholder=\"Password\"> \
                 <button type=\"submit\">Sign in</button></form>"
            .to_owned(),
    };
    format!("<nav><a href=\"/productpage\">BookInfo Sample</a><div>{account}</div></nav>")
}

fn details(details: Option<&Value>) -> String {
    let Some(details) = details else {
        return format!(
            "<section id=\"details\"><h2>Error fetching product details</h2>\
             <p class=\"error\" id=\"details-error\">{DETAILS_UNAVAILABLE}</p></section>"
        );
    };
    let mut list = String::new();
    for (field, label) in DETAILS_FIELDS {
        if let Some(value) = details.get(field) {
            let _ = write!(
                list,
                "<dt>{label}:</dt><dd id=\"details-{}\">{}</dd>",
                field.to_ascii_lowercase(),
                escape(&plain(value))
            );
        }
    }
    format!("<section id=\"details\"><h2>Book Details</h2><dl>{list}</dl></section>")
}

fn reviews(reviews: Option<&ProductReviews>) -> String {
    let Some(reviews) = reviews else {
        return format!(
            "<section id=\"reviews\"><h2>Error fetching product reviews</h2>\
             <p class=\"error\" id=\"reviews-error\">{REVIEWS_UNAVAILABLE}</p></section>"
        );
    };
    let mut html = String::from("<section id=\"reviews\"><h2>Book Reviews</h2>");
    for one in &reviews.reviews {
        html.push_str(&review(one));
    }
    let _ = write!(
        html,
        "<p id=\"reviews-served-by\">Reviews served by: <u>{}</u></p></section>",
        escape(&reviews.podname)
    );
    html
}

fn review(review: &Review) -> String {
    let rating = match &review.rating {
        None => String::new(),
        Some(Rating::Stars { stars, color }) => {
            let stars = (*stars).min(MAX_STARS);
            let color = escape(color);
            format!(
                "<div class=\"stars\" data-stars=\"{stars}\" data-color=\"{color}\" \
                 style=\"color: {color}\">{}{}</div>",
                "★".repeat(stars as usize),
                "☆".repeat((MAX_STARS - stars) as usize),
            )
        }
        Some(Rating::Error { error }) => {
            format!(
                "<p class=\"rating-error error\"><i>{}</i></p>",
                escape(error)
            )
        }
    };
    let reviewer = escape(&review.reviewer);
    format!(
        "<blockquote class=\"review\" data-reviewer=\"{reviewer}\">\
         <p class=\"review-text\">{}</p><small class=\"reviewer\">{reviewer}</small>{rating}\
         </blockquote>",
        escape(&review.text)
    )
}

/// A JSON value as text: strings without their quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes text for use in HTML content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<b a=\"x\">Tom & 'Jerry'</b>"),
            "&lt;b a=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn stars_are_capped_and_padded_to_five() {
        let html = review(&Review {
            reviewer: "R".into(),
            text: "t".into(),
            rating: Some(Rating::Stars {
                stars: 9,
                color: "red".into(),
            }),
        });
        assert!(
            html.contains("data-stars=\"5\" data-color=\"red\""),
            "{html}"
        );
        assert!(html.contains("★★★★★<"), "{html}");

        let html = review(&Review {
            reviewer: "R".into(),
            text: "t".into(),
            rating: Some(Rating::Stars {
                stars: 2,
                color: "black".into(),
            }),
        });
        assert!(html.contains("★★☆☆☆"), "{html}");
    }
}
