package main

import (
	"io"

	"github.com/spf13/cobra"
)

// streams holds the IO a command reads and writes, so tests can run commands in memory.
type streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

func newRootCmd(io *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "mqscope",
		Short: "A debugger for MQTT 5 and 3.1.1 connections",
		Long: `mqscope decodes and explains MQTT 5 and 3.1.1 traffic: every frame, what each side
asked for and was granted, topic aliases, reason codes, and every rule of the standard a peer broke.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVersionCmd(io), newDecodeCmd(io))
	root.AddCommand(newReadCmd(io), newCaptureCmd(io))
	root.AddCommand(newProxyCmd(io), newCACmd(io))
	return root
}
