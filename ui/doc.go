// Package ui is mqscope's interactive debugger in the terminal: connections, packets, the
// detail tree of a packet with its findings and links, its bytes, the session, the topics.
//
// Model holds what the screens show and is tested without a terminal; the views draw it with
// tview. The UI reads records (inspect's pipeline, a Hub subscription), never a source: it
// imports neither capture nor proxy. What it can do to live connections goes through Actions,
// which mqscope proxy implements.
package ui
