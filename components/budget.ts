import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { BudgetConfig } from "./config";
import { Tags, named } from "./tags";

/** Alerts at these percentages of the monthly limit (actual spend): one early, one at the limit. */
export const BUDGET_ALERT_PERCENTS = [80, 100] as const;

export interface LabBudgetArgs extends BudgetConfig {
  /** The cost allocation tag the budget counts: Stack=<this stack> (components/tags.ts). */
  stack?: string;
  /** Tags for the budget itself; it also gets its own Name. */
  tags?: Tags;
}

/**
 * An AWS Budgets budget for the stack's resources: the month's actual cost of everything
 * tagged Stack=<stack>, with an email at 80 % and 100 % of the limit. AWS counts a tag only
 * once it is an activated cost allocation tag (Billing console, Cost allocation tags, or
 * `aws ce update-cost-allocation-tags-status`), and only for costs after that, with up to a
 * day's delay (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html).
 * A budget alerts; it never stops anything: the hosts' auto-stop does that.
 */
export class LabBudget extends pulumi.ComponentResource {
  public readonly budget: aws.budgets.Budget;

  constructor(name: string, args: LabBudgetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("criu-lab:budget:LabBudget", name, {}, opts);
    const stack = args.stack ?? pulumi.getStack();
    this.budget = new aws.budgets.Budget(
      `${name}-monthly`,
      {
        budgetType: "COST",
        timeUnit: "MONTHLY",
        limitAmount: String(args.monthlyUsd),
        limitUnit: "USD",
        // A user-defined cost allocation tag is written `user:<key>$<value>` in a filter.
        costFilters: [{ name: "TagKeyValue", values: [`user:Stack$${stack}`] }],
        notifications: BUDGET_ALERT_PERCENTS.map((threshold) => ({
          comparisonOperator: "GREATER_THAN",
          notificationType: "ACTUAL",
          threshold,
          thresholdType: "PERCENTAGE",
          subscriberEmailAddresses: [args.email],
        })),
        tags: named(`${name}-monthly`, args.tags),
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
