//! Bookinfo's services over real HTTP on ephemeral ports.

mod apis;
mod binary;
mod forwarding;
mod kube;
mod page;
mod support;
