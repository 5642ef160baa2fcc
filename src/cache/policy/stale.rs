//! Serving a stale entry when its revalidation fails (RFC 9111 §4.2.4, RFC 5861
//! `stale-if-error`): the origin could not be reached, timed out, sent something that
//! is not HTTP, or answered 5xx. The entry answers as a hit, with `Cache-Status:
//! larder; hit; fwd=stale` (and `fwd-status` when the origin did answer), if the
//! response's or the request's `stale-if-error`, or `--serve-stale`, covers how stale
//! it is, and nothing forbids serving it stale.

use super::lookup::plan;
use super::{Answer, AnswerStatus, Cache, CacheEx, Serving};
use crate::access_log::ResultCode;
use crate::http::cache_control::CacheControl;
use crate::http::cached::{with_request_fields, with_response_fields};
use crate::http::freshness::{current_age, freshness_lifetime, may_serve_on_error, Stored};
use crate::http::Method;

/// The answer from the stale entry `c` was revalidating, when its revalidation failed
/// and the entry may answer in its place; `None` otherwise (the caller answers the
/// error). `request_head` is the request as forwarded (the client's own, kept aside
/// while larder's validators went up, is used when there is one); `fwd_status` the
/// origin's status when it answered (5xx). The entry's pin passes to the answer's
/// `serving`.
pub fn stale_on_error(
    cache: &mut Cache,
    c: &mut CacheEx,
    method: &Method,
    request_head: &[u8],
    fwd_status: Option<u16>,
) -> Option<Answer> {
    let obj = c.stale.clone()?;
    let client_head = c.client_head.take();
    let request_head = client_head.as_deref().unwrap_or(request_head);
    let now = cache.now;
    let stored_head = cache.store.bytes(obj.head.clone());
    let times = Stored {
        request_time: obj.meta.requested,
        response_time: obj.meta.stored,
    };
    let len = obj.body.end - obj.body.start;
    let serve_stale = cache.serve_stale;
    let planned = with_request_fields(request_head, |req| {
        with_response_fields(stored_head, |status, stored| {
            let req_cc = CacheControl::from_request(req);
            let age = current_age(stored, times, now);
            let lifetime = freshness_lifetime(stored, times.response_time);
            if !may_serve_on_error(&req_cc, stored, age, lifetime, serve_stale) {
                return None;
            }
            plan(
                req,
                stored_head,
                status,
                stored,
                len,
                age,
                0,
                method,
                &cache.via,
            )
            .ok()
        })
    })
    .flatten()
    .flatten()?;
    c.stale = None;
    c.result = ResultCode::RefreshFailOld;
    Some(Answer {
        head: planned.head,
        cache_status: AnswerStatus::StaleOnError { fwd_status },
        status: planned.status,
        serving: Serving {
            pos: obj.body.start + planned.body.start,
            end: obj.body.start + planned.body.end,
            obj: Some(obj),
        },
    })
}
