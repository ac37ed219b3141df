//! A queue that keeps its oldest element inline: a connection with one request in flight at a
//! time (most of them) never allocates for its queues, and one that pipelined a burst can give
//! the burst's buffer back ([`SmallDeque::release`]) once it has caught up.

use std::collections::VecDeque;

/// Oldest first; the oldest element lives in the struct, the rest on the heap.
#[derive(Debug)]
pub(crate) struct SmallDeque<T> {
    /// The oldest element; `None` only when the queue is empty.
    first: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for SmallDeque<T> {
    fn default() -> Self {
        SmallDeque {
            first: None,
            rest: VecDeque::new(),
        }
    }
}

impl<T> SmallDeque<T> {
    pub(crate) fn push_back(&mut self, value: T) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.rest.push_back(value);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let front = self.first.take();
        self.first = self.rest.pop_front();
        front
    }

    pub(crate) fn front_mut(&mut self) -> Option<&mut T> {
        self.first.as_mut()
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(self.rest.iter())
    }

    /// Gives the heap buffer back if the queue is empty.
    pub(crate) fn release(&mut self) {
        if self.is_empty() && self.rest.capacity() > 0 {
            self.rest = VecDeque::new();
        }
    }

    /// Heap slots held.
    #[cfg(test)]
    pub(crate) fn heap_capacity(&self) -> usize {
        self.rest.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_at_a_time_never_touches_the_heap() {
        let mut q = SmallDeque::default();
        for i in 0..100 {
            q.push_back(i);
            assert_eq!(q.len(), 1);
            assert_eq!(q.pop_front(), Some(i));
            assert!(q.is_empty());
        }
        assert_eq!(q.heap_capacity(), 0);
    }

    #[test]
    fn a_burst_keeps_order_and_its_buffer_is_given_back() {
        let mut q = SmallDeque::default();
        (0..10).for_each(|i| q.push_back(i));
        assert_eq!(
            q.iter().copied().collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        *q.front_mut().expect("front") = 100;
        assert_eq!(q.pop_front(), Some(100));
        q.release();
        assert!(q.heap_capacity() > 0, "not released while not empty");
        assert_eq!(
            std::iter::from_fn(|| q.pop_front()).collect::<Vec<_>>(),
            (1..10).collect::<Vec<_>>()
        );
        q.release();
        assert_eq!(q.heap_capacity(), 0);
    }
}
