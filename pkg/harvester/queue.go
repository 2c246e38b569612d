package harvester

import (
	"container/heap"
	"math"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// queue orders the open items that are not busy: one waiting heap by NextAt
// for every vendor, and one due heap per vendor by deadline (the
// verification nearest to losing its data goes first), or by arrival in
// FIFO order. An item is in at most one heap; a busy item is in none.
//
// The queue has no lock of its own: Engine.mu guards it and the items'
// nextAt, deadline, waitIdx and dueIdx fields, and every method is called
// with it held. Its vendors are fixed at construction: the ones the engine
// has a caller for.
type queue struct {
	wait itemHeap
	due  map[contract.Vendor]*itemHeap
	fifo bool
	seq  int64 // arrivals, the due heaps' order in FIFO
}

func newQueue(vendors []contract.Vendor, fifo bool) queue {
	q := queue{due: map[contract.Vendor]*itemHeap{}, fifo: fifo}
	for _, v := range vendors {
		q.due[v] = &itemHeap{due: true}
	}
	return q
}

// push queues it, with the deadline and NextAt of its state: in the waiting
// heap when waits (its NextAt is to come, or it is unregistered), else in
// its vendor's due heap. An item of a vendor the engine has no caller for
// is never due: it waits until its NextAt and is then dropped (promote).
// push reports whether the item is in the waiting heap.
func (q *queue) push(it *item, deadline, next time.Time, waits bool) bool {
	it.deadline = unixNano(deadline)
	if q.fifo {
		q.seq++
		it.deadline = q.seq // arrival order
	}
	it.nextAt = unixNano(next)
	if waits {
		heap.Push(&q.wait, it)
		return true
	}
	if d := q.due[it.vendor()]; d != nil {
		heap.Push(d, it)
	}
	return false
}

// remove takes it out of the heap it is in, if any.
func (q *queue) remove(it *item) {
	if it.waitIdx >= 0 {
		heap.Remove(&q.wait, int(it.waitIdx))
	}
	if it.dueIdx >= 0 {
		heap.Remove(q.due[it.vendor()], int(it.dueIdx))
	}
}

// promote moves the waiting items whose NextAt has come to their vendor's
// due heap. It hands the unregistered ones to discard instead (they are due
// only to be deleted, which takes no vendor slot) and the ones of a vendor
// without a due heap to unknown: they leave the queue.
func (q *queue) promote(now time.Time, discard, unknown func(*item)) {
	for q.wait.Len() > 0 && q.wait.items[0].nextAt <= now.UnixNano() {
		it := heap.Pop(&q.wait).(*item)
		d := q.due[it.vendor()]
		switch {
		case d == nil:
			unknown(it)
		case it.unreg:
			discard(it)
		default:
			heap.Push(d, it)
		}
	}
}

// head returns the first item of v's due heap, nil when it is empty.
func (q *queue) head(v contract.Vendor) *item {
	if d := q.due[v]; d != nil && d.Len() > 0 {
		return d.items[0]
	}
	return nil
}

// pop takes the first item out of v's due heap.
func (q *queue) pop(v contract.Vendor) *item { return heap.Pop(q.due[v]).(*item) }

// dueLen is how many of v's items wait for a slot.
func (q *queue) dueLen(v contract.Vendor) int {
	if d := q.due[v]; d != nil {
		return d.Len()
	}
	return 0
}

// nextWake is the earliest NextAt of the waiting items; false when none waits.
func (q *queue) nextWake() (time.Time, bool) {
	if q.wait.Len() == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, q.wait.items[0].nextAt), true
}

// unixNano is t in Unix nanoseconds, saturated at the ends of int64 (before
// 1678 and after 2262, where time.Time.UnixNano is undefined): a state
// without its first-seen time has a deadline in year 1, which must still
// come first.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minUnixNano):
		return math.MinInt64
	case t.After(maxUnixNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var minUnixNano, maxUnixNano = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// itemHeap orders items for container/heap, keeping each item's index in
// it current: the waiting heap by nextAt, a due heap by deadline.
type itemHeap struct {
	items []*item
	due   bool
}

func (h *itemHeap) Len() int { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool {
	if h.due {
		return h.items[i].deadline < h.items[j].deadline
	}
	return h.items[i].nextAt < h.items[j].nextAt
}
func (h *itemHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setIndex(i)
	h.setIndex(j)
}
func (h *itemHeap) Push(x any) { h.items = append(h.items, x.(*item)); h.setIndex(len(h.items) - 1) }
func (h *itemHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	h.index(it, -1)
	return it
}
func (h *itemHeap) setIndex(i int) { h.index(h.items[i], i) }
func (h *itemHeap) index(it *item, i int) {
	if h.due {
		it.dueIdx = int32(i)
	} else {
		it.waitIdx = int32(i)
	}
}
