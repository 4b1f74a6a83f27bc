"""What the end-to-end and chaos suites share: a flywheel of real service processes on the
stack (`world`), requests and checks on its runs (`runs`), and what the NMP emulator's state and
timeline say about them (`emulator`)."""
