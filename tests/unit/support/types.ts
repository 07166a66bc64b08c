/**
 * The resource and lookup types the unit tests look for, by the names the tests give the
 * program's parts: one table, so a test reads `T.instance` whatever file it is in.
 */
export const T = {
  stack: "pulumi:pulumi:Stack",
  lab: "criu-lab:lab:CriuLab",
  seat: "criu-lab:seat:LabSeat",
  labInstance: "criu-lab:instance:LabInstance",
  labFiles: "criu-lab:files:LabFiles",
  vpc: "aws:ec2/vpc:Vpc",
  subnet: "aws:ec2/subnet:Subnet",
  igw: "aws:ec2/internetGateway:InternetGateway",
  routes: "aws:ec2/routeTable:RouteTable",
  assoc: "aws:ec2/routeTableAssociation:RouteTableAssociation",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  keyPair: "aws:ec2/keyPair:KeyPair",
  instance: "aws:ec2/instance:Instance",
  eip: "aws:ec2/eip:Eip",
  eipAssoc: "aws:ec2/eipAssociation:EipAssociation",
  stash: "pulumi:index:Stash",
  tlsKey: "tls:index/privateKey:PrivateKey",
  command: "command:remote:Command",
  copy: "command:remote:CopyToRemote",
  running: "aws:ec2transitgateway/instanceState:InstanceState",
  budget: "aws:budgets/budget:Budget",
} as const;

/** The lookups (invoke tokens) the program makes; plan/lookups.ts answers each. */
export const INVOKE = {
  ami: "aws:ec2/getAmi:getAmi",
  instanceType: "aws:ec2/getInstanceType:getInstanceType",
  offerings: "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings",
  zones: "aws:index/getAvailabilityZones:getAvailabilityZones",
  subnet: "aws:ec2/getSubnet:getSubnet",
  instances: "aws:ec2/getInstances:getInstances",
  quota: "aws:servicequotas/getServiceQuota:getServiceQuota",
  eips: "aws:ec2/getEips:getEips",
  region: "aws:index/getRegion:getRegion",
  localRun: "command:local:run",
} as const;
