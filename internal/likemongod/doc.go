// Package likemongod holds tests, and only tests, that hold mongotest to
// what a real mongod answers: each test talks to a server through the
// official Go driver and asserts the reply a MongoDB 8.2 single-node
// replica set gives. With MONGODB_URI set they run against that
// deployment instead, which is how their expectations are checked;
// tests that need mongotest's Go API skip there with a message.
package likemongod
