//! The plan of a chat job's run: which `GetChatData` calls to make, several at once, and how
//! their answers become the job's pages, in `seq` order, each message once. Pure logic: the
//! caller ([`super::fetch_chatdata`]) makes the calls and hands the answers back, in whatever
//! order they come.
//!
//! `GetChatData(seq, limit)` answers with the messages after `seq`, ascending, at most `limit`;
//! seqs may have gaps, and an answer short of `limit` means the archive had nothing more when
//! it was made. So the call after a page can start as soon as that page is in (its last `seq` is
//! known before it is decrypted), and calls further ahead can be guessed: `limit` seqs apart,
//! widened by the gaps seen so far (by a little less than them: an overlap costs bytes, a guess
//! too far costs a call on the critical path).
//!
//! Correctness does not rest on the guesses. The *frontier* is the seq up to which every
//! message is known; an answer is taken in only once it starts at or below the frontier (so it
//! leaves no hole), and only its messages past the frontier are kept (so overlaps are dropped).
//! When nothing asked starts at or below the frontier, the frontier itself is asked for next.
//! A short answer at the frontier ends the run unless a later answer holds messages, in which
//! case the frontier is asked for again (messages may have arrived in between).
//!
//! Pages are cut from the messages in order, `limit` each, so a page holds the same messages
//! however the calls went: `page N` of a job is the same page in every run of it, except a
//! run's last page, which holds what the archive had then. A page is never cut before every
//! message up to its end is known, so progress never passes a message that was not published.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What the plan needs to know of a message.
pub trait Sequenced {
    fn seq(&self) -> u64;
}

/// One page to publish: the messages after `seq`, up to and including `next_seq`.
#[derive(Debug)]
pub struct PlannedPage<M> {
    pub seq: u64,
    pub next_seq: u64,
    /// Whether the page is full, so the archive may hold more (the page's `has_more`).
    pub has_more: bool,
    pub messages: Vec<M>,
}

/// What the run does next.
#[derive(Debug)]
pub enum Next<M, E> {
    /// Decrypt and publish this page.
    Page(PlannedPage<M>),
    /// Wait for an answer.
    Wait,
    /// The run is over: the job's pages are all out, or its last page was.
    Done,
    /// A call the run cannot do without failed: the run stops at the last page published.
    Failed(E),
}

/// The plan of one run of a chat job.
#[derive(Debug)]
pub struct Catchup<M, E> {
    limit: u64,
    /// Calls out at once (a call for the frontier is made even when they are all out).
    in_flight_max: usize,
    /// Pages the job may still publish.
    pages_left: u32,
    /// Pages after which the door hands the job off, if it does.
    handoff_after: Option<u32>,
    /// Pages worth fetching for: up to the handoff, or to the job's last page.
    pages_ahead: u32,
    /// The next page's `seq`: where the last page published ended.
    published_to: u64,
    /// Every message up to here has been received.
    frontier: u64,
    /// Messages received and not yet cut into a page, in order, the last one at the frontier.
    ready: VecDeque<M>,
    /// Answers received that start beyond the frontier, by the seq they were asked after.
    answers: BTreeMap<u64, Vec<M>>,
    /// Calls made and not answered, by the seq they were asked after.
    in_flight: BTreeSet<u64>,
    /// Where the next call ahead starts.
    next_start: u64,
    /// Seqs from one message to the next in the answers so far, and how many such steps: the
    /// gaps in the archive.
    spanned: u64,
    held: u64,
    /// The last answer that reached the frontier was short: nothing more was there then.
    caught_up: bool,
    /// The frontier asked for again because later answers held messages after a short one.
    recheck: Option<u64>,
    /// That second call found nothing after the frontier either: the archive contradicts itself
    /// there, and the later answers are taken as following on.
    bridge: bool,
    failed: Option<E>,
    done: bool,
}

impl<M: Sequenced, E> Catchup<M, E> {
    /// A run from `seq` that may publish `pages_left` pages, keeping up to `in_flight` calls
    /// out, and fetching for no page after the `handoff_after`th (the door then hands the job
    /// off; should it go on instead, so does the plan).
    pub fn new(
        seq: u64,
        limit: u32,
        in_flight: usize,
        pages_left: u32,
        handoff_after: Option<u32>,
    ) -> Self {
        let handoff_after = handoff_after.map(|pages| pages.max(1));
        Self {
            limit: u64::from(limit.max(1)),
            in_flight_max: in_flight.max(1),
            pages_left,
            handoff_after,
            pages_ahead: pages_for_a_run(handoff_after, pages_left),
            published_to: seq,
            frontier: seq,
            ready: VecDeque::new(),
            answers: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            next_start: seq,
            spanned: 0,
            held: 0,
            caught_up: false,
            recheck: None,
            bridge: false,
            failed: None,
            done: pages_left == 0,
        }
    }

    /// The calls to make now (the seqs to ask after), each counted as in flight until
    /// [`Catchup::answered`] is told of it.
    pub fn calls_to_make(&mut self) -> Vec<u64> {
        let mut calls = Vec::new();
        if self.done || self.failed.is_some() || self.pages_ahead == 0 {
            return calls;
        }
        if self.needs_the_frontier() && !self.frontier_asked() {
            if self.caught_up {
                self.recheck = Some(self.frontier);
            }
            calls.push(self.frontier);
            self.in_flight.insert(self.frontier);
            self.next_start = self
                .next_start
                .max(self.frontier.saturating_add(self.step()));
        }
        while !self.caught_up
            && self.in_flight.len() < self.in_flight_max
            && self.expected_messages() < self.window()
        {
            if self.next_start <= self.frontier {
                // The guesses fell behind: the frontier's own call covers the next `step`.
                self.next_start = self.frontier.saturating_add(self.step());
            }
            let start = self.next_start;
            calls.push(start);
            self.in_flight.insert(start);
            self.next_start = start.saturating_add(self.step());
        }
        calls
    }

    /// The answer to the call that asked after `start`.
    pub fn answered(&mut self, start: u64, answer: Result<Vec<M>, E>) {
        self.in_flight.remove(&start);
        match answer {
            // Needed now, and nothing else asked covers the frontier: the run cannot go on.
            Err(error) if start <= self.frontier && !self.frontier_asked() => {
                self.failed.get_or_insert(error);
            }
            // Ahead of the frontier (or covered by another call): when the frontier gets
            // there, it is asked for itself.
            Err(_) => {}
            Ok(mut messages) => {
                // The server's order is not trusted: a message out of it would be dropped.
                if !messages.is_sorted_by(|a, b| a.seq() < b.seq()) {
                    messages.sort_by_key(Sequenced::seq);
                    messages.dedup_by_key(|m| m.seq());
                }
                if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
                    self.spanned += last.seq() - first.seq();
                    self.held += messages.len() as u64 - 1;
                }
                let kept = self.answers.entry(start).or_default();
                if messages.len() >= kept.len() {
                    *kept = messages;
                }
                self.take_in();
            }
        }
    }

    /// What to do next: a page when one is whole, else wait, stop or fail.
    pub fn next(&mut self) -> Next<M, E> {
        if self.done {
            return Next::Done;
        }
        if self.pages_ahead == 0 {
            // Asked for more after the handoff page: the door went on.
            self.pages_ahead = pages_for_a_run(self.handoff_after, self.pages_left);
        }
        if self.ready.len() as u64 >= self.limit {
            let messages: Vec<M> = self.ready.drain(..self.limit as usize).collect();
            return Next::Page(self.cut(messages, true));
        }
        if let Some(error) = self.failed.take() {
            self.done = true;
            return Next::Failed(error);
        }
        if self.is_caught_up() {
            let messages = self.ready.drain(..).collect();
            self.done = true;
            return Next::Page(self.cut(messages, false));
        }
        Next::Wait
    }

    /// Whether a call is out.
    #[cfg(test)]
    fn waiting(&self) -> bool {
        !self.in_flight.is_empty()
    }

    fn cut(&mut self, messages: Vec<M>, has_more: bool) -> PlannedPage<M> {
        let seq = self.published_to;
        let next_seq = messages.last().map_or(seq, Sequenced::seq);
        self.published_to = next_seq;
        self.pages_left -= 1;
        self.pages_ahead = self.pages_ahead.saturating_sub(1);
        if self.pages_left == 0 {
            self.done = true;
        }
        PlannedPage {
            seq,
            next_seq,
            has_more,
            messages,
        }
    }

    /// Takes in every answer that starts at or below the frontier.
    fn take_in(&mut self) {
        while let Some(entry) = self.answers.first_entry() {
            let start = *entry.key();
            if start > self.frontier && !self.bridge {
                break;
            }
            let messages = entry.remove();
            self.bridge = false;
            let full = messages.len() as u64 >= self.limit;
            let reach = messages.last().map_or(start, Sequenced::seq);
            let before = self.frontier;
            for message in messages {
                if message.seq() > self.frontier {
                    self.frontier = message.seq();
                    self.ready.push_back(message);
                }
            }
            if !full && reach >= before {
                self.caught_up = true;
                // Only a call made after the later answers came can contradict them.
                self.bridge =
                    self.recheck == Some(start) && self.frontier == before && self.later_messages();
            } else if self.frontier > before {
                self.caught_up = false;
            }
        }
        if self.caught_up {
            // Answers after the end that found nothing say nothing new.
            self.answers.retain(|_, messages| !messages.is_empty());
        }
    }

    /// The frontier must be asked for: the pages ahead need more messages than are in, and
    /// the run is not over there.
    fn needs_the_frontier(&self) -> bool {
        // Only messages up to the frontier count: later ones cannot be used until it gets there.
        (self.ready.len() as u64) < self.window() && (!self.caught_up || self.later_messages())
    }

    fn frontier_asked(&self) -> bool {
        self.in_flight
            .first()
            .is_some_and(|&start| start <= self.frontier)
    }

    /// Whether an answer beyond the frontier holds messages.
    fn later_messages(&self) -> bool {
        self.answers.values().any(|messages| !messages.is_empty())
    }

    /// Caught up, and nothing asked or answered says otherwise.
    fn is_caught_up(&self) -> bool {
        self.caught_up && self.in_flight.is_empty() && !self.later_messages()
    }

    /// How many messages to have in or asked for beyond the last page: the pages ahead, but
    /// no more than one page beyond the calls out, so that a run whose calls outpace its
    /// decryption holds a few pages, not all of them.
    fn window(&self) -> u64 {
        let pages = self.pages_ahead.min(self.in_flight_max as u32 + 1);
        u64::from(pages) * self.limit
    }

    /// Messages this run has or has asked for, beyond the last page.
    fn expected_messages(&self) -> u64 {
        let answered: usize = self.answers.values().map(Vec::len).sum();
        (self.ready.len() + answered) as u64 + self.in_flight.len() as u64 * self.limit
    }

    /// Seqs between the starts of two calls ahead: `limit`, widened by seven eighths of the
    /// gaps seen per page.
    fn step(&self) -> u64 {
        if self.held == 0 {
            return self.limit;
        }
        let gaps_per_page = (self.spanned - self.held).saturating_mul(self.limit) / self.held;
        self.limit + gaps_per_page * 7 / 8
    }
}

/// Pages worth fetching for in a run: up to the handoff, or to the job's last page.
fn pages_for_a_run(handoff_after: Option<u32>, pages_left: u32) -> u32 {
    handoff_after.unwrap_or(pages_left).min(pages_left)
}

#[cfg(test)]
mod tests {
    //! The plan against an archive in memory: random gaps, short answers, answers in any order,
    //! failed calls, and doors that hand the job off. Every case must publish the archive's
    //! messages in order, each once, pages following on from each other.

    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Message(u64);

    impl Sequenced for Message {
        fn seq(&self) -> u64 {
            self.0
        }
    }

    /// An archive, how it grows, and how its server misbehaves.
    struct Server {
        seqs: Vec<u64>,
        short: f64,
        failing: f64,
        /// The chance that a message arrives before a call is answered.
        growing: f64,
        rng: StdRng,
    }

    impl Server {
        fn answer(&mut self, after: u64, limit: u32) -> Result<Vec<Message>, &'static str> {
            if self.rng.gen_bool(self.growing) {
                let newest = self.seqs.last().copied().unwrap_or(0);
                self.seqs.push(newest + self.rng.gen_range(1..4));
            }
            if self.rng.gen_bool(self.failing) {
                return Err("transient");
            }
            let mut take = limit as usize;
            if limit > 1 && self.rng.gen_bool(self.short) {
                take = self.rng.gen_range(1..limit as usize);
            }
            Ok(self
                .seqs
                .iter()
                .filter(|&&seq| seq > after)
                .take(take)
                .map(|&seq| Message(seq))
                .collect())
        }
    }

    struct Case {
        limit: u32,
        in_flight: usize,
        max_pages: u32,
        handoff_after: Option<u32>,
        start: u64,
    }

    /// Runs a job to its end: each run until it fails (then a retry goes on from the last
    /// page) or hands off (then a continuation does). Returns the pages.
    fn run_job(case: &Case, server: &mut Server) -> Vec<PlannedPage<Message>> {
        let mut pages = Vec::new();
        let (mut seq, mut pages_done) = (case.start, 0);
        for _run in 0..10_000 {
            let mut plan: Catchup<Message, &str> = Catchup::new(
                seq,
                case.limit,
                case.in_flight,
                case.max_pages - pages_done,
                case.handoff_after,
            );
            let mut out: Vec<u64> = Vec::new();
            let mut this_run = 0;
            let ended = loop {
                match plan.next() {
                    Next::Page(page) => {
                        this_run += 1;
                        let (has_more, next_seq) = (page.has_more, page.next_seq);
                        pages.push(page);
                        pages_done += 1;
                        seq = next_seq;
                        if !has_more || pages_done == case.max_pages {
                            break true;
                        }
                        if case.handoff_after == Some(this_run) {
                            break false;
                        }
                    }
                    Next::Done => break true,
                    Next::Failed(_) => break false,
                    Next::Wait => {
                        out.extend(plan.calls_to_make());
                        assert!(plan.waiting() && !out.is_empty(), "waiting for nothing");
                        let at = server.rng.gen_range(0..out.len());
                        let start = out.swap_remove(at);
                        let answer = server.answer(start, case.limit);
                        plan.answered(start, answer);
                    }
                }
                out.extend(plan.calls_to_make());
            };
            if ended {
                return pages;
            }
        }
        panic!("the job never ended");
    }

    fn check(case: &Case, server: &Server, pages: &[PlannedPage<Message>], complete: bool) {
        let mut seq = case.start;
        for page in pages {
            assert_eq!(page.seq, seq, "pages follow on from each other");
            assert!(page.messages.len() <= case.limit as usize);
            assert_eq!(page.has_more, page.messages.len() == case.limit as usize);
            seq = page.next_seq;
        }
        let published: Vec<u64> = pages
            .iter()
            .flat_map(|p| p.messages.iter().map(|m| m.0))
            .collect();
        let expected: Vec<u64> = server
            .seqs
            .iter()
            .copied()
            .filter(|&s| s > case.start && s <= seq)
            .collect();
        assert_eq!(published, expected, "each message once, in order");
        if complete && pages.len() < case.max_pages as usize {
            assert_eq!(
                seq,
                server.seqs.last().copied().unwrap_or(0).max(case.start)
            );
        }
    }

    #[test]
    fn every_message_once_in_order_whatever_the_answers() {
        for seed in 0..3000u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let count = rng.gen_range(0..400);
            let gap = [0.0, 0.0, 0.2, 0.7][rng.gen_range(0..4)];
            let seqs: Vec<u64> = (1..=count).filter(|_| !rng.gen_bool(gap)).collect();
            let short = [0.0, 0.0, 0.3][rng.gen_range(0..3)];
            let failing = [0.0, 0.0, 0.1][rng.gen_range(0..3)];
            let growing = [0.0, 0.0, 0.3][rng.gen_range(0..3)];
            let case = Case {
                limit: rng.gen_range(1..40),
                in_flight: rng.gen_range(1..6),
                max_pages: rng.gen_range(1..50),
                handoff_after: [None, Some(1), Some(3)][rng.gen_range(0..3)],
                start: [0, 0, rng.gen_range(0..count.max(1))][rng.gen_range(0..3)],
            };
            let mut server = Server {
                seqs,
                short,
                failing,
                growing,
                rng,
            };
            let pages = run_job(&case, &mut server);
            // With short answers a run may end where the server said it was caught up, and
            // where the archive grows, before its newest messages.
            check(&case, &server, &pages, short == 0.0 && growing == 0.0);
        }
    }

    #[test]
    fn a_run_asks_ahead_and_takes_answers_in_seq_order_whatever_their_order() {
        let seqs: Vec<u64> = (1..=100).collect();
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 10, 3, 10, None);
        assert_eq!(plan.calls_to_make(), [0, 10, 20]);
        assert!(matches!(plan.next(), Next::Wait));
        let answer = |after: u64| -> Vec<Message> {
            seqs.iter()
                .filter(|&&s| s > after)
                .take(10)
                .map(|&s| Message(s))
                .collect()
        };
        // The third page comes first: it waits for the first two.
        plan.answered(20, Ok(answer(20)));
        assert!(matches!(plan.next(), Next::Wait));
        plan.answered(0, Ok(answer(0)));
        let Next::Page(first) = plan.next() else {
            panic!("page 1 is in")
        };
        assert_eq!((first.seq, first.next_seq, first.has_more), (0, 10, true));
        assert_eq!(plan.calls_to_make(), [30, 40]);
        plan.answered(10, Ok(answer(10)));
        let seqs_of =
            |page: PlannedPage<Message>| page.messages.iter().map(|m| m.0).collect::<Vec<_>>();
        let Next::Page(second) = plan.next() else {
            panic!("page 2 is in")
        };
        assert_eq!(seqs_of(second), (11..=20).collect::<Vec<_>>());
        let Next::Page(third) = plan.next() else {
            panic!("page 3 is in")
        };
        assert_eq!(seqs_of(third), (21..=30).collect::<Vec<_>>());
    }

    #[test]
    fn a_short_answer_before_later_messages_has_the_frontier_asked_again() {
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 10, 2, 5, None);
        assert_eq!(plan.calls_to_make(), [0, 10]);
        plan.answered(10, Ok((11..=20).map(Message).collect()));
        // Short: "caught up" when it was made, but seqs 11.. exist.
        plan.answered(0, Ok((1..=4).map(Message).collect()));
        assert!(matches!(plan.next(), Next::Wait));
        assert_eq!(plan.calls_to_make(), [4]);
        plan.answered(4, Ok((5..=14).map(Message).collect()));
        let Next::Page(page) = plan.next() else {
            panic!("a page is in")
        };
        assert_eq!((page.seq, page.next_seq), (0, 10));
        let Next::Page(page) = plan.next() else {
            panic!("a page is in")
        };
        assert_eq!((page.seq, page.next_seq), (10, 20));
    }

    #[test]
    fn a_failed_call_ahead_is_made_again_from_the_frontier_and_one_there_ends_the_run() {
        let mut plan: Catchup<Message, &str> = Catchup::new(0, 10, 2, 5, None);
        assert_eq!(plan.calls_to_make(), [0, 10]);
        plan.answered(10, Err("ahead"));
        plan.answered(0, Ok((1..=10).map(Message).collect()));
        assert!(matches!(plan.next(), Next::Page(_)));
        assert_eq!(plan.calls_to_make(), [10, 20]);
        plan.answered(10, Err("at the frontier"));
        assert!(matches!(plan.next(), Next::Failed("at the frontier")));
        assert!(matches!(plan.next(), Next::Done));
    }

    #[test]
    fn no_call_is_made_for_pages_after_the_handoff() {
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 10, 4, 100, Some(2));
        assert_eq!(plan.calls_to_make(), [0, 10]);
        plan.answered(0, Ok((1..=10).map(Message).collect()));
        plan.answered(10, Ok((11..=20).map(Message).collect()));
        assert!(matches!(plan.next(), Next::Page(_)));
        assert!(matches!(plan.next(), Next::Page(_)));
        assert_eq!(plan.calls_to_make(), Vec::<u64>::new());
        // The door went on after all: so does the plan.
        assert!(matches!(plan.next(), Next::Wait));
        assert_eq!(plan.calls_to_make(), [20, 30]);
    }

    #[test]
    fn a_run_whose_pages_are_not_taken_holds_one_page_beyond_its_calls_out() {
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 10, 2, 100, None);
        let mut asked = Vec::new();
        for _ in 0..10 {
            for start in plan.calls_to_make() {
                asked.push(start);
                let messages = (start + 1..=start + 10).map(Message).collect();
                plan.answered(start, Ok(messages));
            }
        }
        assert_eq!(asked, [0, 10, 20], "two calls out, one page beyond");
        assert!(matches!(plan.next(), Next::Page(_)));
        assert_eq!(plan.calls_to_make(), [30]);
    }

    #[test]
    fn an_answer_out_of_order_is_taken_in_order_each_message_once() {
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 4, 1, 1, None);
        assert_eq!(plan.calls_to_make(), [0]);
        plan.answered(0, Ok([3, 1, 3, 2].map(Message).to_vec()));
        let Next::Page(page) = plan.next() else {
            panic!("the page is in")
        };
        assert_eq!(page.messages, [1, 2, 3].map(Message));
        assert_eq!((page.next_seq, page.has_more), (3, false));
    }

    #[test]
    fn calls_ahead_widen_with_the_gaps_seen() {
        let mut plan: Catchup<Message, ()> = Catchup::new(0, 10, 1, 100, None);
        assert_eq!(plan.calls_to_make(), [0]);
        // Ten messages over 20 seqs: every other seq is a gap.
        plan.answered(0, Ok((1..=10).map(|i| Message(i * 2)).collect()));
        assert!(matches!(plan.next(), Next::Page(_)));
        assert_eq!(plan.calls_to_make(), [20]);
        assert_eq!(plan.step(), 10 + 10 * 7 / 8);
    }
}
