//! A connection's log context, made afresh each time its task runs.
//!
//! `Instrument` keeps one span for a future's whole life. tracing-subscriber keeps
//! every span in a slab whose slots are never freed and each keep a small table the
//! formatter filled, so 10 000 idle connections leave 10 000 such tables behind
//! when they go: scattered over the heap among the connections' memory, each pins
//! a page the allocator cannot return (about 4 KiB per former peer, measured with
//! heaptrack and `scripts/bench.sh --case memory`). Made per poll, spans exist only
//! while a task runs, so the slab stays as small as the number of workers, and
//! every event still carries the connection's fields. A span costs a formatted
//! string per poll; a connection's task is polled once per read or write of up to
//! hundreds of KiB, so that is noise.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tracing::Span;

pin_project! {
    /// `inner`, with the span `make` returns entered while it is polled.
    #[derive(Debug)]
    pub struct SpanPerPoll<F, M> {
        #[pin]
        inner: F,
        make: M,
    }
}

/// Wraps a future so that each poll runs inside a fresh span from `make`.
pub fn span_per_poll<F, M>(inner: F, make: M) -> SpanPerPoll<F, M>
where
    F: Future,
    M: Fn() -> Span,
{
    SpanPerPoll { inner, make }
}

impl<F, M> Future for SpanPerPoll<F, M>
where
    F: Future,
    M: Fn() -> Span,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let span = (this.make)();
        let _entered = span.enter();
        this.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::info_span;
    use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    /// Records, for each event, the names of the spans it was inside, and counts
    /// the spans open at once.
    #[derive(Clone, Default)]
    struct Seen {
        events: Arc<Mutex<Vec<Vec<String>>>>,
        open: Arc<Mutex<(usize, usize)>>,
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
            let names = ctx
                .event_scope(event)
                .map(|s| s.map(|x| x.name().to_string()).collect())
                .unwrap_or_default();
            self.events.lock().unwrap().push(names);
        }
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: LayerContext<'_, S>,
        ) {
            let mut o = self.open.lock().unwrap();
            o.0 += 1;
            o.1 = o.1.max(o.0);
        }
        fn on_close(&self, _: tracing::span::Id, _: LayerContext<'_, S>) {
            self.open.lock().unwrap().0 -= 1;
        }
    }

    #[tokio::test]
    async fn events_carry_the_span_and_no_span_outlives_a_poll() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = span_per_poll(
            async move {
                tracing::info!("before waiting");
                rx.await.unwrap();
                tracing::info!("after waiting");
            },
            || info_span!("conn", n = 7),
        );
        let task = tokio::spawn(task);
        // The task is parked on `rx`: its span is closed meanwhile.
        tokio::task::yield_now().await;
        while seen.events.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(seen.open.lock().unwrap().0, 0, "a span outlived its poll");
        tx.send(()).unwrap();
        task.await.unwrap();
        let events = seen.events.lock().unwrap().clone();
        assert_eq!(events, vec![vec!["conn".to_string()]; 2]);
        assert_eq!(*seen.open.lock().unwrap(), (0, 1));
    }
}
