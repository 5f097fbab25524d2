// The official Node.js driver against mongotest: connect as a replica-set
// client, follow a change stream, write, read, and print what it saw as one
// JSON line. TestNodeDriver checks the line. Usage: node smoke.js URI
'use strict';
const { MongoClient } = require('mongodb');

async function main() {
  const client = new MongoClient(process.argv[2], { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  try {
    const coll = client.db('nodesmoke').collection('orders');
    const cs = coll.watch([{ $match: { operationType: { $in: ['insert', 'update'] } } }], { fullDocument: 'updateLookup' });
    await cs.tryNext(); // opens the cursor: the events below come after it
    await coll.insertOne({ _id: 1, item: 'tea', qty: 1 });
    await coll.updateOne({ _id: 1 }, { $inc: { qty: 1 } });
    const first = await cs.next();
    const second = await cs.next();
    const token = cs.resumeToken;
    await cs.close();
    const doc = await coll.findOne({ _id: 1 });
    const hello = await client.db('admin').command({ hello: 1 });
    console.log(JSON.stringify({
      ops: [first.operationType, second.operationType],
      updated: second.updateDescription.updatedFields,
      lookup: second.fullDocument,
      doc,
      setName: hello.setName,
      token: typeof token._data,
    }));
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
