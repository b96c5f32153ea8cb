package gateway

// RaceEnabled tells the black-box tests that the race detector runs.
const RaceEnabled = raceEnabled
